#include "cli/server_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace hpl::cli {

namespace {

// "addr", port of a socket address; false for non-IP families.
bool ip_port(const sockaddr_storage& sa, std::string* addr, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    *port = ntohs(a.sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
    *port = ntohs(a.sin6_port);
  } else {
    return false;
  }
  *addr = buf;
  return true;
}

}  // namespace

int find_connection_fd(const std::string& remote_addr, int remote_port, int local_port) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t lp = sizeof peer, ls = sizeof self;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &lp) != 0) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &ls) != 0) continue;
    std::string pa, sa;
    int pp = 0, sp = 0;
    if (!ip_port(peer, &pa, &pp) || !ip_port(self, &sa, &sp)) continue;
    if (pa == remote_addr && pp == remote_port && sp == local_port) return fd;
  }
  return -1;
}

bool peer_closed(int fd) {
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;
  if (n == 0) return true;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace hpl::cli
