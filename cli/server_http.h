// A small HTTP/1.1 server for `hpl serve`. One I/O thread reads every connection without
// blocking and under deadlines, so slow or idle clients hold no handler thread; a request
// whose head and body are complete goes to a worker thread (or, for cheap routes, runs on the
// I/O thread), one request at a time per connection (pipelined requests wait in order).
// Limits: the request head and then its body must each arrive within read_timeout; a
// connection count per client address (a new connection first evicts that address's oldest
// idle or still-reading one); bodies over max_body (Content-Length or decoded chunked) get
// 413; compressed bodies 415. stop() closes idle and reading connections at once.
#pragma once

#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cli/server_http_parse.h"

namespace hpl::cli {

struct HttpOptions {
  uint64_t max_body = 1 << 20;
  int worker_threads = 16;      // threads that run (slow) handlers
  double read_timeout_s = 10;   // for the request head, then again for its body
  double idle_timeout_s = 5;    // a keep-alive connection between requests
  double write_timeout_s = 10;  // a write that makes no progress for this long fails
  int max_conns = 512;          // open connections in all
  int max_conns_per_addr = 32;  // open connections from one client address
};

struct HttpConn;
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request and its response, for the handler that answers it.
class HttpExchange {
 public:
  const HttpRequest& request() const;
  // A whole response with Content-Length.
  void reply(int status, std::string_view content_type, std::string_view body,
             const HttpHeaders& extra = {});
  // A streamed response: chunked for HTTP/1.1; for HTTP/1.0 plain bytes ended by closing the
  // connection. Each returns false once the client is gone (stop writing then).
  bool stream_begin(int status, std::string_view content_type, const HttpHeaders& extra = {});
  bool stream_write(std::string_view data);
  bool stream_end();
  // The client went away: the connection was reset, or the peer closed it later than right
  // after its request (a close that arrives with the request, or within kHalfCloseGrace of
  // it, is a half-close: the client still reads the reply). Never consumes data.
  bool client_gone();
  bool replied() const { return replied_; }

  static constexpr std::chrono::milliseconds kHalfCloseGrace{1000};

 private:
  friend class HttpServer;
  HttpExchange(HttpConn& c, bool on_io_thread, double write_timeout_s)
      : c_(c), on_io_thread_(on_io_thread), write_timeout_s_(write_timeout_s) {}
  bool send(std::string_view data);
  std::string head(int status, std::string_view content_type, const HttpHeaders& extra) const;

  HttpConn& c_;
  bool on_io_thread_;  // cheap routes: the response is buffered for the I/O thread
  double write_timeout_s_;
  bool replied_ = false, streaming_ = false, gone_ = false;
};

using HttpHandler = std::function<void(HttpExchange&)>;
// The body (and its Content-Type) of an error the server answers itself (404, 408, 413, ...).
using HttpErrorBody =
    std::function<std::pair<std::string, std::string>(int status, const std::string& message)>;

class HttpServer {
 public:
  HttpServer(HttpOptions opt, HttpErrorBody error_body);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // fast: a cheap handler that never blocks; it runs on the I/O thread, so it answers even
  // while every worker is busy.
  void route(const std::string& method, const std::string& path, HttpHandler h, bool fast = false);
  // Binds and listens (port 0: any free port); returns the port. Throws "port in use" when
  // another socket listens there (no SO_REUSEPORT: two servers never share a port).
  int listen(const std::string& host, int port);
  // Serves until stop(); returns when every connection is closed and the workers are done.
  void run();
  // Thread-safe (not async-signal-safe). Closes the listener and every connection that has
  // no request in a handler; connections still in a handler close when it returns.
  void stop();

 private:
  struct Route {
    HttpHandler handler;
    bool fast;
  };
  using ConnPtr = std::shared_ptr<HttpConn>;

  using TimePoint = std::chrono::steady_clock::time_point;
  void begin_stop();
  TimePoint expire_deadlines(TimePoint now);  // -> the next deadline (at most now + 1 s)
  // What to poll: the wake-up fd, the listener (when open), then a slot per conn in polled.
  void poll_set(std::vector<pollfd>& fds, std::vector<ConnPtr>& polled) const;
  void on_events(const std::vector<pollfd>& fds, const std::vector<ConnPtr>& polled);
  void accept_all();
  void admit(int fd, const std::string& addr);
  bool evict_one(const std::string* addr);
  void on_readable(const ConnPtr& c);
  void on_writable(const ConnPtr& c);
  void advance(const ConnPtr& c);
  void dispatch(const ConnPtr& c);
  void after_response(const ConnPtr& c, bool keep);
  void fail(const ConnPtr& c, int status, const std::string& message, bool close = true,
            const HttpHeaders& extra = {});
  void close_conn(const ConnPtr& c);
  void worker_loop();
  void run_handler(const ConnPtr& c, HttpExchange& ex);
  void wake();

  HttpOptions opt_;
  HttpErrorBody error_body_;
  std::map<std::string, std::map<std::string, Route>> routes_;  // path -> method -> route
  int listen_fd_ = -1, wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::map<int, ConnPtr> conns_;  // by fd; I/O thread only
  std::map<std::string, int> per_addr_;

  std::mutex mu_;  // guards the two queues and quit_
  std::condition_variable work_cv_;
  std::deque<ConnPtr> work_;                   // complete requests for the workers
  std::deque<std::pair<ConnPtr, bool>> done_;  // answered by a worker: (conn, keep alive)
  bool quit_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace hpl::cli
