#ifndef SLUICE_PROXY_TLS_SSL_EX_DATA_H_
#define SLUICE_PROXY_TLS_SSL_EX_DATA_H_

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <utility>

namespace sluice {

// A value of type T attached to an SSL in an ex_data slot of its own
// (allocated once per T for the process), owned by the SSL: freed with it,
// copied by SSL_dup. Never uses SSL app data, which Asio's stream owns.
// Get and Set follow the SSL's own rules: one thread at a time per SSL.
template <typename T>
class SslExData {
 public:
  // The value attached to `ssl`, or nullptr.
  static T* Get(const SSL* ssl) {
    const int index = Index();
    if (index < 0) return nullptr;
    return static_cast<T*>(SSL_get_ex_data(ssl, index));
  }

  // Attaches `value` to `ssl`, replacing an earlier one. False when
  // OpenSSL could not allocate the slot.
  static bool Set(SSL* ssl, T value) {
    if (T* old = Get(ssl)) {
      *old = std::move(value);
      return true;
    }
    const int index = Index();
    if (index < 0) return false;
    T* fresh = new T(std::move(value));
    if (SSL_set_ex_data(ssl, index, fresh) != 1) {
      delete fresh;
      return false;
    }
    return true;
  }

 private:
  static int Index() {
    static const int index =
        SSL_get_ex_new_index(0, nullptr, nullptr, &Dup, &Free);
    return index;
  }
  static void Free(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/,
                   int /*idx*/, long /*argl*/, void* /*argp*/) {
    delete static_cast<T*>(ptr);
  }
  static int Dup(CRYPTO_EX_DATA* /*to*/, const CRYPTO_EX_DATA* /*from*/,
                 void** from_d, int /*idx*/, long /*argl*/, void* /*argp*/) {
    const T* from = static_cast<const T*>(*from_d);
    *from_d = from != nullptr ? new T(*from) : nullptr;
    return 1;
  }
};

}  // namespace sluice

#endif  // SLUICE_PROXY_TLS_SSL_EX_DATA_H_
