#include "cli/server_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <stdexcept>

namespace hpl::cli {

using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr std::chrono::seconds kLingerTime{2};  // reading (and dropping) after an error reply
constexpr std::chrono::seconds kStopGrace{5};   // then connections still in a handler are cut

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

const char* reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

std::string http_date() {
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string peer_address(const sockaddr_storage& sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(sa).sin_addr, buf, sizeof buf);
  else if (sa.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(sa).sin6_addr, buf, sizeof buf);
  return buf;
}

}  // namespace

// One client connection. The I/O thread owns it, except while a worker answers its request.
struct HttpConn {
  enum class State { kIdle, kHead, kBody, kBusy, kWriting, kLinger };
  int fd = -1;
  std::string addr;
  State state = State::kIdle;
  Clock::time_point since, deadline;  // when the state began; when it times out
  std::string in, out;                // read, not yet parsed; to write (I/O thread)
  size_t scanned = 0;                 // bytes of `in` searched for the end of the head
  bool eof = false;                   // the peer closed its side (half-close or gone)
  bool close_after = false;           // close once `out` is written
  HttpRequest req;
  BodyFraming framing;
  std::optional<ChunkedDecoder> chunked;
  Clock::time_point request_done;  // the request's last byte was read
  // When the I/O thread saw the peer's FIN (or a reset) while a handler ran, in steady-clock
  // ticks; 0: not yet. Timed by the I/O thread, which never blocks, not by a busy handler.
  std::atomic<Clock::rep> fin_at{0};
  const void* route = nullptr;  // the handler for the request
  bool keep = false;            // a worker's verdict on keep-alive
};

// ---- HttpExchange ----

const HttpRequest& HttpExchange::request() const {
  return c_.req;
}

std::string HttpExchange::head(int status, std::string_view content_type,
                               const HttpHeaders& extra) const {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  h += "Date: " + http_date() + "\r\n";
  if (!content_type.empty()) h.append("Content-Type: ").append(content_type).append("\r\n");
  for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  if (!c_.framing.keep_alive)
    h += "Connection: close\r\n";
  else if (c_.req.http10)
    h += "Connection: keep-alive\r\n";
  return h;
}

bool HttpExchange::send(std::string_view data) {
  if (gone_) return false;
  if (on_io_thread_) {
    c_.out.append(data);
    return true;
  }
  const auto limit = seconds(write_timeout_s_);
  while (!data.empty()) {
    const ssize_t n = ::send(c_.fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{c_.fd, POLLOUT, 0};
      const int ms =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(limit).count());
      if (::poll(&p, 1, ms) > 0 && !(p.revents & (POLLERR | POLLNVAL))) continue;
    }
    gone_ = true;  // reset, closed, or no progress within write_timeout
    return false;
  }
  return true;
}

void HttpExchange::reply(int status, std::string_view content_type, std::string_view body,
                         const HttpHeaders& extra) {
  if (replied_) throw std::logic_error("HttpExchange: replied twice");
  replied_ = true;
  std::string h = head(status, content_type, extra);
  h += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  if (c_.req.method != "HEAD") h.append(body);
  send(h);
}

bool HttpExchange::stream_begin(int status, std::string_view content_type,
                                const HttpHeaders& extra) {
  if (replied_ || on_io_thread_) throw std::logic_error("HttpExchange: cannot stream here");
  replied_ = streaming_ = true;
  if (c_.req.http10) c_.framing.keep_alive = false;  // the end of the body is the close
  std::string h = head(status, content_type, extra);
  if (!c_.req.http10) h += "Transfer-Encoding: chunked\r\n";
  h += "\r\n";
  return send(h);
}

bool HttpExchange::stream_write(std::string_view data) {
  if (data.empty()) return !gone_;
  if (c_.req.http10) return send(data);
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string chunk = size;
  chunk.append(data).append("\r\n");
  return send(chunk);
}

bool HttpExchange::stream_end() {
  return c_.req.http10 ? !gone_ : send("0\r\n\r\n");
}

bool HttpExchange::client_gone() {
  if (gone_) return true;
  char ch;
  const ssize_t n = ::recv(c_.fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // pipelined bytes: still there
  if (n == 0) {             // the peer's FIN: a half-close if it came with the request
    // After a FIN, recv reports 0 even once a reset arrived; the TCP state tells them apart.
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (::getsockopt(c_.fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE)
      return gone_ = true;
    const Clock::rep seen = c_.fin_at.load();
    const Clock::time_point fin = seen ? Clock::time_point(Clock::duration(seen)) : Clock::now();
    if (c_.eof || fin - c_.request_done < kHalfCloseGrace) {
      c_.eof = true;
      return false;
    }
    return gone_ = true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
  return gone_ = true;  // reset
}

// ---- HttpServer ----

HttpServer::HttpServer(HttpOptions opt, HttpErrorBody error_body)
    : opt_(opt), error_body_(std::move(error_body)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  for (auto& [fd, c] : conns_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(wake_fd_);
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler h,
                       bool fast) {
  routes_[path][method] = Route{std::move(h), fast};
}

int HttpServer::listen(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string where = host + ":" + std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res))
    throw std::runtime_error("cannot listen on " + where + ": " + ::gai_strerror(rc));
  std::string err = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR only: restart while old connections sit in TIME_WAIT, but Linux still
    // refuses a port that another socket listens on (SO_REUSEPORT would share it).
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      sockaddr_storage sa{};
      socklen_t len = sizeof sa;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
      listen_fd_ = fd;
      ::freeaddrinfo(res);
      return ntohs(sa.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(sa).sin6_port
                                            : reinterpret_cast<sockaddr_in&>(sa).sin_port);
    }
    err =
        errno == EADDRINUSE ? "port in use (another process listens on it)" : std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  throw std::runtime_error("cannot listen on " + where + ": " + err);
}

void HttpServer::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void HttpServer::stop() {
  stopping_ = true;
  wake();
}

// Closes the listener and every connection not in a handler; the rest close as they finish.
void HttpServer::begin_stop() {
  ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<ConnPtr> idle;
  for (auto& [fd, c] : conns_)
    if (c->state != HttpConn::State::kBusy) idle.push_back(c);
  for (const ConnPtr& c : idle) close_conn(c);
}

// A request still arriving past its deadline gets 408; an idle connection is closed.
HttpServer::TimePoint HttpServer::expire_deadlines(TimePoint now) {
  std::vector<ConnPtr> expired;
  TimePoint next = now + std::chrono::seconds(1);
  for (auto& [fd, c] : conns_) {
    if (c->state == HttpConn::State::kBusy) continue;
    if (c->deadline <= now)
      expired.push_back(c);
    else
      next = std::min(next, c->deadline);
  }
  for (const ConnPtr& c : expired) {
    if (c->state == HttpConn::State::kHead || c->state == HttpConn::State::kBody)
      fail(c, 408,
           "the request did not arrive within " +
               std::to_string(static_cast<int>(opt_.read_timeout_s)) + " s (--read-timeout)");
    else
      close_conn(c);
  }
  return next;
}

void HttpServer::poll_set(std::vector<pollfd>& fds, std::vector<ConnPtr>& polled) const {
  fds.clear();
  polled.clear();
  fds.push_back({wake_fd_, POLLIN, 0});
  if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
  for (auto& [fd, c] : conns_) {
    short ev = 0;
    switch (c->state) {
      case HttpConn::State::kIdle:
      case HttpConn::State::kHead:
      case HttpConn::State::kBody:
        ev = c->eof ? 0 : POLLIN;
        if (!c->out.empty()) ev |= POLLOUT;  // 100 Continue
        break;
      case HttpConn::State::kWriting:
        ev = POLLOUT;
        break;
      case HttpConn::State::kLinger:
        ev = POLLIN;
        break;
      case HttpConn::State::kBusy:  // only to time the peer's FIN (client_gone)
        if (c->fin_at.load() != 0) continue;
        ev = POLLRDHUP;
        break;
    }
    fds.push_back({fd, ev, 0});
    polled.push_back(c);
  }
}

void HttpServer::on_events(const std::vector<pollfd>& fds, const std::vector<ConnPtr>& polled) {
  if (fds[0].revents) {
    uint64_t v;
    [[maybe_unused]] ssize_t r = ::read(wake_fd_, &v, sizeof v);
  }
  const size_t first_conn = fds.size() - polled.size();
  if (first_conn == 2 && listen_fd_ >= 0 && fds[1].revents) accept_all();
  for (size_t i = first_conn; i < fds.size(); ++i) {
    const ConnPtr& c = polled[i - first_conn];
    if (c->fd < 0 || !fds[i].revents) continue;  // closed meanwhile
    if (c->state == HttpConn::State::kBusy) {
      c->fin_at = Clock::now().time_since_epoch().count();
      continue;
    }
    if (fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) on_writable(c);
    if (c->fd >= 0 && (fds[i].revents & (POLLIN | POLLERR | POLLHUP))) on_readable(c);
  }
}

void HttpServer::run() {
  if (listen_fd_ < 0) throw std::logic_error("HttpServer::run before listen");
  for (int i = 0; i < opt_.worker_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  std::optional<Clock::time_point> stop_at;
  std::vector<pollfd> fds;
  std::vector<ConnPtr> polled;
  for (;;) {
    const auto now = Clock::now();
    if (stopping_ && !stop_at) {
      stop_at = now;
      begin_stop();
    }
    if (stop_at && now - *stop_at > kStopGrace)  // handlers stuck writing: cut them off
      for (auto& [fd, c] : conns_) ::shutdown(fd, SHUT_RDWR);
    if (stop_at && conns_.empty()) break;

    // Answered by workers: back to reading (pipelined requests next), or closed.
    std::deque<std::pair<ConnPtr, bool>> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done.swap(done_);
    }
    for (auto& [c, keep] : done) after_response(c, keep);

    const TimePoint next = expire_deadlines(now);
    poll_set(fds, polled);
    const int ms = static_cast<int>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1));
    const int n = ::poll(fds.data(), fds.size(), stop_at ? std::min(ms, 100) : ms);
    if (n < 0 && errno != EINTR)
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (n > 0) on_events(fds, polled);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void HttpServer::accept_all() {
  for (;;) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int fd =
        ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or out of descriptors (retried on the next wake-up)
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    admit(fd, peer_address(sa));
  }
}

// Over a limit, the oldest connection that has no request in a handler makes room; if every
// one is busy, the new connection gets 503.
void HttpServer::admit(int fd, const std::string& addr) {
  const bool full = static_cast<int>(conns_.size()) >= opt_.max_conns;
  const bool addr_full = per_addr_[addr] >= opt_.max_conns_per_addr;
  if ((full && !evict_one(nullptr)) || (addr_full && !evict_one(&addr))) {
    const auto [type, body] =
        error_body_(503, "too many connections" + std::string(addr_full ? " from " + addr : ""));
    const std::string resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + type +
                             "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] ssize_t n = ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
    return;
  }
  auto c = std::make_shared<HttpConn>();
  c->fd = fd;
  c->addr = addr;
  c->since = Clock::now();
  c->deadline = c->since + seconds(opt_.idle_timeout_s);
  conns_[fd] = c;
  ++per_addr_[addr];
}

bool HttpServer::evict_one(const std::string* addr) {
  // Idle first, then the slowest readers (oldest state start).
  ConnPtr victim;
  auto rank = [](HttpConn::State s) {
    return s == HttpConn::State::kIdle || s == HttpConn::State::kLinger ? 0
           : s == HttpConn::State::kHead                                ? 1
                                                                        : 2;
  };
  for (auto& [fd, c] : conns_) {
    if (c->state == HttpConn::State::kBusy || c->state == HttpConn::State::kWriting) continue;
    if (addr && c->addr != *addr) continue;
    if (!victim || rank(c->state) < rank(victim->state) ||
        (rank(c->state) == rank(victim->state) && c->since < victim->since))
      victim = c;
  }
  if (!victim) return false;
  close_conn(victim);
  return true;
}

void HttpServer::close_conn(const ConnPtr& c) {
  if (c->fd < 0) return;
  conns_.erase(c->fd);
  if (--per_addr_[c->addr] <= 0) per_addr_.erase(c->addr);
  ::close(c->fd);
  c->fd = -1;
}

void HttpServer::on_readable(const ConnPtr& c) {
  char buf[kReadChunk];
  for (;;) {
    const bool reading = c->state == HttpConn::State::kIdle || c->state == HttpConn::State::kHead ||
                         c->state == HttpConn::State::kBody || c->state == HttpConn::State::kLinger;
    if (!reading || c->eof) return;
    const ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close_conn(c);  // reset
      return;
    }
    if (n == 0) {
      c->eof = true;
      if (c->state == HttpConn::State::kLinger) {
        close_conn(c);
        return;
      }
    } else if (c->state != HttpConn::State::kLinger) {
      c->in.append(buf, static_cast<size_t>(n));
    }
    advance(c);
    if (c->fd < 0) return;
  }
}

void HttpServer::on_writable(const ConnPtr& c) {
  while (!c->out.empty()) {
    const ssize_t n = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_conn(c);
    return;
  }
  if (c->state != HttpConn::State::kWriting) return;
  if (c->close_after) {
    // Lingering close: stop sending, then drop what the client still sends for a moment, so
    // an early error reply is not lost to a reset while the client writes its body.
    ::shutdown(c->fd, SHUT_WR);
    c->state = HttpConn::State::kLinger;
    c->since = Clock::now();
    c->deadline = c->since + kLingerTime;
    if (c->eof) close_conn(c);
    return;
  }
  after_response(c, true);
}

// Parses what has arrived: the head, then the body; a complete request is dispatched.
void HttpServer::advance(const ConnPtr& c) {
  using S = HttpConn::State;
  const auto now = Clock::now();
  if (c->state == S::kIdle) {
    if (c->in.empty()) {
      if (c->eof) close_conn(c);
      return;
    }
    c->state = S::kHead;
    c->since = now;
    c->deadline = now + seconds(opt_.read_timeout_s);
  }
  if (c->state == S::kHead) {
    // Parse only once the head can be complete: a client that drips bytes costs a scan of
    // the new bytes, not a parse of the whole head, per read.
    const size_t from = c->scanned > 2 ? c->scanned - 2 : 0;
    c->scanned = c->in.size();
    if (c->in.size() <= kMaxHeadBytes && c->in.find("\n\n", from) == std::string::npos &&
        c->in.find("\n\r\n", from) == std::string::npos) {
      if (c->eof) close_conn(c);
      return;
    }
    size_t head_len = 0;
    const ParseStatus st =
        parse_request_head(c->in, opt_.max_body, &c->req, &c->framing, &head_len);
    if (st.kind == ParseStatus::kError) return fail(c, st.http_status, st.message);
    if (st.kind == ParseStatus::kIncomplete) {
      if (c->eof) close_conn(c);  // closed mid-head: nobody to answer
      return;
    }
    c->in.erase(0, head_len);
    c->scanned = 0;
    c->req.remote_addr = c->addr;
    c->chunked.reset();
    if (c->framing.chunked) c->chunked.emplace(opt_.max_body);
    c->state = S::kBody;
    c->since = now;
    c->deadline = now + seconds(opt_.read_timeout_s);
    const bool has_body = c->framing.chunked || c->framing.content_length > 0;
    if (c->framing.expect_continue && has_body && c->in.empty()) {
      c->out += "HTTP/1.1 100 Continue\r\n\r\n";
      on_writable(c);
      if (c->fd < 0) return;
    }
  }
  if (c->state == S::kBody) {
    if (c->chunked) {
      size_t used = 0;
      const ParseStatus st = c->chunked->feed(c->in, &c->req.body, &used);
      c->in.erase(0, used);
      if (st.kind == ParseStatus::kError) return fail(c, st.http_status, st.message);
      if (st.kind == ParseStatus::kIncomplete) {
        if (c->eof) close_conn(c);
        return;
      }
    } else {
      const size_t need = static_cast<size_t>(c->framing.content_length - c->req.body.size());
      const size_t take = std::min(need, c->in.size());
      c->req.body.append(c->in, 0, take);
      c->in.erase(0, take);
      if (c->req.body.size() < c->framing.content_length) {
        if (c->eof) close_conn(c);
        return;
      }
    }
    dispatch(c);
  }
}

void HttpServer::dispatch(const ConnPtr& c) {
  c->request_done = Clock::now();
  c->state = HttpConn::State::kBusy;
  if (stopping_) c->framing.keep_alive = false;
  auto p = routes_.find(c->req.path);
  if (p == routes_.end())
    return fail(c, 404, "no such endpoint: " + c->req.method + " " + c->req.path, false);
  auto m = p->second.find(c->req.method);
  if (m == p->second.end()) {
    std::string allow;
    for (const auto& [method, route] : p->second) allow += (allow.empty() ? "" : ", ") + method;
    return fail(c, 405,
                "method " + c->req.method + " is not allowed on " + c->req.path +
                    " (allowed: " + allow + ")",
                false, {{"Allow", allow}});
  }
  const Route* r = &m->second;
  c->route = r;
  if (r->fast) {
    HttpExchange ex(*c, /*on_io_thread=*/true, opt_.write_timeout_s);
    run_handler(c, ex);
    if (!ex.replied()) {
      close_conn(c);
      return;
    }
    c->state = HttpConn::State::kWriting;
    c->close_after = false;
    c->deadline = Clock::now() + seconds(opt_.write_timeout_s);
    on_writable(c);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_.push_back(c);
  }
  work_cv_.notify_one();
}

void HttpServer::run_handler(const ConnPtr& c, HttpExchange& ex) {
  const Route* r = static_cast<const Route*>(c->route);
  std::string error;
  try {
    r->handler(ex);
    return;
  } catch (const std::exception& e) {
    error = std::string("internal error: ") + e.what();
  } catch (...) {
    error = "internal error";
  }
  if (!ex.replied()) {
    const auto [type, body] = error_body_(500, error);
    ex.reply(500, type, body);
  } else {
    c->framing.keep_alive = false;  // a stream cut short: the close tells the client
  }
}

void HttpServer::worker_loop() {
  for (;;) {
    ConnPtr c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return quit_ || !work_.empty(); });
      if (work_.empty()) return;
      c = std::move(work_.front());
      work_.pop_front();
    }
    HttpExchange ex(*c, /*on_io_thread=*/false, opt_.write_timeout_s);
    run_handler(c, ex);
    const bool keep = ex.replied() && !ex.gone_ && c->framing.keep_alive;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.emplace_back(c, keep);
    }
    wake();
  }
}

// A response was written (by a worker, or from `out`): read the next request, or close.
void HttpServer::after_response(const ConnPtr& c, bool keep) {
  if (c->fd < 0) return;
  if (!keep || stopping_ || !c->framing.keep_alive) {
    close_conn(c);
    return;
  }
  c->state = HttpConn::State::kIdle;
  c->req = HttpRequest{};
  c->since = Clock::now();
  c->deadline = c->since + seconds(opt_.idle_timeout_s);
  advance(c);  // a pipelined request may be complete already
}

// An error the server answers itself. close: the request could not be read whole, so the
// connection closes after the reply (pipelined bytes dropped); else it stays open.
void HttpServer::fail(const ConnPtr& c, int status, const std::string& message, bool close,
                      const HttpHeaders& extra) {
  if (close) {
    c->framing.keep_alive = false;
    c->in.clear();
  }
  c->state = HttpConn::State::kWriting;
  c->close_after = close;
  HttpExchange ex(*c, /*on_io_thread=*/true, opt_.write_timeout_s);
  const auto [type, body] = error_body_(status, message);
  ex.reply(status, type, body, extra);
  c->deadline = Clock::now() + seconds(opt_.write_timeout_s);
  on_writable(c);
}

}  // namespace hpl::cli
