// The Java client of tests/integration/test_https_clients.py, run as a
// single-file program:
//
//   java Client.java PROXY_HOST PROXY_PORT BASE_URL COUNT BODY_SIZE
//
// java.net.http.HttpClient with the proxy set in code (Java does not read
// HTTPS_PROXY) and the default SSLContext, whose trust comes from
// JAVA_TOOL_OPTIONS (-Djavax.net.ssl.trustStore=...), as an app would.
// COUNT times, one after another: GET BASE_URL/get/<i>, then POST
// BASE_URL/post/<i> with a BODY_SIZE body (byte k is (k * 31 + 7) mod 256).
// Each response is printed as its body followed by "\n@@ <METHOD> <status>\n".

import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

public class Client {
  public static void main(String[] args) throws Exception {
    String proxyHost = args[0];
    int proxyPort = Integer.parseInt(args[1]);
    String base = args[2];
    int count = Integer.parseInt(args[3]);
    byte[] body = new byte[Integer.parseInt(args[4])];
    for (int k = 0; k < body.length; k++) {
      body[k] = (byte) ((k * 31 + 7) & 0xff);
    }
    HttpClient client =
        HttpClient.newBuilder()
            .proxy(ProxySelector.of(new InetSocketAddress(proxyHost, proxyPort)))
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(60))
            .build();
    PrintStream out = System.out;
    for (int i = 0; i < count; i++) {
      HttpRequest get =
          HttpRequest.newBuilder(URI.create(base + "/get/" + i))
              .timeout(Duration.ofSeconds(120))
              .GET()
              .build();
      print(out, "GET", client.send(get, HttpResponse.BodyHandlers.ofByteArray()));
      HttpRequest post =
          HttpRequest.newBuilder(URI.create(base + "/post/" + i))
              .timeout(Duration.ofSeconds(120))
              .header("Content-Type", "application/octet-stream")
              .POST(HttpRequest.BodyPublishers.ofByteArray(body))
              .build();
      print(out, "POST", client.send(post, HttpResponse.BodyHandlers.ofByteArray()));
    }
    out.flush();
  }

  private static void print(PrintStream out, String method, HttpResponse<byte[]> r) {
    out.write(r.body(), 0, r.body().length);
    byte[] mark =
        ("\n@@ " + method + " " + r.statusCode() + "\n").getBytes(StandardCharsets.US_ASCII);
    out.write(mark, 0, mark.length);
    out.flush();
  }
}
