#ifndef SLUICE_TESTS_TESTING_FAST_PATH_TEST_PEER_H_
#define SLUICE_TESTS_TESTING_FAST_PATH_TEST_PEER_H_

// One end of the pause fast path in a test: a UDP socket on 127.0.0.1 that
// seals what it sends and opens what it reads
// (common/protocol/fast_path_codec.h) with one stream's offer. It sends to the
// port given to Connect, or else to wherever the last datagram it read came
// from.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "common/protocol/fast_path_codec.h"
#include "common/sys/socket_address.h"

namespace sluice {

class FastPathTestPeer {
 public:
  FastPathTestPeer() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    SocketAddress a = *SocketAddressOf("127.0.0.1", 0);
    bind(fd_, a.get(), a.length);
    a.length = sizeof(a.storage);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a.storage), &a.length);
    port_ = PortOf(a);
  }
  ~FastPathTestPeer() { close(fd_); }
  FastPathTestPeer(const FastPathTestPeer&) = delete;
  FastPathTestPeer& operator=(const FastPathTestPeer&) = delete;

  uint16_t port() const { return port_; }
  void Connect(uint16_t port) { to_ = *SocketAddressOf("127.0.0.1", port); }

  void SendRaw(const std::string& datagram) {
    sendto(fd_, datagram.data(), datagram.size(), 0, to_.get(), to_.length);
  }
  void Send(const sluice::v1::FastPathOffer& offer, FastPathDirection dir,
            uint64_t seq, const sluice::v1::FastPathBody& body) {
    SendRaw(SealFastPath(offer.key(), dir, offer.token(), seq, body));
  }

  // The next datagram within 5 s, if it opens with `offer` as sent in
  // direction `dir`.
  std::optional<sluice::v1::FastPathBody> Receive(
      const sluice::v1::FastPathOffer& offer, FastPathDirection dir) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return std::nullopt;
    char buf[2048];
    to_.length = sizeof(to_.storage);
    const ssize_t n =
        recvfrom(fd_, buf, sizeof(buf), 0,
                 reinterpret_cast<sockaddr*>(&to_.storage), &to_.length);
    if (n <= 0) return std::nullopt;
    auto env = ParseFastPath(std::string(buf, static_cast<size_t>(n)));
    sluice::v1::FastPathBody body;
    if (!env || env->token != offer.token() ||
        OpenFastPath(offer.key(), dir, *env, &body) != FastPathOpen::kOk) {
      return std::nullopt;
    }
    return body;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  SocketAddress to_;
};

}  // namespace sluice

#endif  // SLUICE_TESTS_TESTING_FAST_PATH_TEST_PEER_H_
