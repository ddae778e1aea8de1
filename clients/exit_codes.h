// The exit codes of the `dwarp` process, shared by every command (clients/sweep/sweep_commands.h says when each
// sweep command uses which; the local commands exit 0 or 1, and 2 on usage errors):
//   0  ok
//   1  refused: the coordinator refused the request, or a local command's job failed
//   2  usage errors (CLI11's, see clients/dwarp_main.cpp) and invalid local input
//   3  the coordinator is unreachable or did not answer in time, or the watch stream broke
//   4  the coordinator refused the token (unauthenticated or permission denied)
#pragma once

namespace dwarp::clients {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitUnauthenticated = 4;

}  // namespace dwarp::clients
