// Whether an HTTP client is still connected, for handlers that cpp-httplib 0.11 gives no view
// of their connection (a non-streamed request waiting in the queue or generating).
#pragma once

#include <string>

namespace hpl::cli {

// The socket of the connection local_port <- remote_addr:remote_port, found among this
// process's descriptors by their addresses; -1 when there is none (or /proc is unavailable).
int find_connection_fd(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer has closed or reset the connection (a zero-byte or failed peek); pending
// pipelined data counts as connected. Never consumes data.
bool peer_closed(int fd);

}  // namespace hpl::cli
