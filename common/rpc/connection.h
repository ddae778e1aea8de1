// Client and server sides of how dwarp processes talk gRPC (DESIGN.md "Secure by default"):
// addresses, the bearer token, TLS, and the one place where dwarp::Status and grpc::Status convert.
//
// Token: sent as the `authorization: Bearer <token>` metadata on every call. Clients read it from
// --token-file FILE, else the DWARP_TOKEN environment variable, else DWARP_TOKEN_FILE (a file name).
// A token file must not be readable or writable by others, nor writable by its group (CheckTokenFileMode);
// group read stays allowed for a dedicated service group (systemd's root:dwarp 0640, Kubernetes' 0440).
// TLS: a client with tls_ca set verifies the server against that CA; with tls_cert/tls_key too it
// presents a client certificate (mTLS). Without tls_ca the channel is plaintext.
//
// Thread-safety: free functions; the returned channel is thread-safe (gRPC's).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dwarp::rpc {

inline constexpr const char* kDefaultCoordinatorAddress = "127.0.0.1:50051";
// Largest message either side accepts (results carry per-job JSON; sweeps can be large).
inline constexpr int kMaxMessageBytes = 64 * 1024 * 1024;

struct ConnectionOptions {
  std::string address = kDefaultCoordinatorAddress;  // host:port
  std::string token;       // empty: none
  std::string tls_ca;      // PEM file of the CA that signed the coordinator's certificate; empty: plaintext
  std::string tls_cert;    // client certificate (PEM file), for mTLS
  std::string tls_key;     // its key
  // Longest wait between the channel's attempts to reconnect after losing the server; 0: gRPC's default
  // (up to 120 s, so a long-lived client may find a restarted server only long after it is back).
  std::chrono::milliseconds max_reconnect_backoff{0};
};

// Permission bits a token file may not have: any access by others (0007) and write by the group (0020).
inline constexpr unsigned kTokenFileForbiddenModeBits = 0027;

// OK when the file at `path` exists and its mode has none of kTokenFileForbiddenModeBits. FailedPrecondition
// naming `origin` (the flag or variable), the file, its mode in octal and the fix (`chmod 600 FILE`);
// NotFound when the file cannot be stat()ed.
Status CheckTokenFileMode(const std::string& path, const std::string& origin);

// Whether the token a client sent equals the expected one, in time that depends on the two lengths only
// (no early return at the first differing byte, nor on a length mismatch).
bool TokensEqual(std::string_view sent, std::string_view expected);

// Fills options.token from the token file, else DWARP_TOKEN, else the file named by DWARP_TOKEN_FILE, when
// options.token is empty. NotFound naming the file when a named token file cannot be read;
// FailedPrecondition when its mode lets others read it (CheckTokenFileMode); InvalidArgument when it is empty.
Status ResolveToken(ConnectionOptions& options, const std::string& token_file);

// Reads a whole file (certificates, keys, tokens) with common/file_io.h's ReadWholeFile: NotFound naming the
// path when there is no such file, InvalidArgument for a folder, Unavailable when it cannot be read.
StatusOr<std::string> ReadTextFile(const std::string& path);

// Checks the port of a gRPC address (host:port, [v6]:port, ipv4:/ipv6:/dns: forms; unix: addresses have
// none): digits, within 1..65535, or 0 too when `allow_any_port` (a server's "any free port"). gRPC itself
// would wrap 99999 to 34463 silently. An address without a port passes (gRPC's default applies).
// InvalidArgument naming `what` ("--listen"), the address and the port.
Status CheckAddressPort(const std::string& address, const std::string& what, bool allow_any_port);

// A channel to options.address with the message size limit and TLS as configured. InvalidArgument for
// an empty address or a port outside 1..65535 (CheckAddressPort), NotFound for unreadable certificate files.
StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& options);

// Adds the token (if any) and a deadline `timeout` from now (if > 0) to a call's context.
void PrepareContext(grpc::ClientContext& context, const ConnectionOptions& options,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

// The token sent by a client, from the server side's metadata value ("Bearer <token>"); empty if malformed.
std::string TokenFromAuthorizationHeader(const std::string& header);

// The one conversion between the project's Status and gRPC's, each way (codes map by name).
grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

// A client-facing reason for a failed call: UNAVAILABLE becomes "coordinator unreachable at ADDRESS
// (...)", the other codes keep the server's message.
Status DescribeCallFailure(const grpc::Status& status, const std::string& address);

}  // namespace dwarp::rpc
