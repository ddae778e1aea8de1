#include "common/rpc/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <sstream>

#include "common/file_io.h"

namespace dwarp::rpc {

namespace {

std::string Trimmed(std::string text) {
  const char* space = " \t\r\n";
  const auto begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  const auto end = text.find_last_not_of(space);
  return text.substr(begin, end - begin + 1);
}

StatusOr<std::string> ReadToken(const std::string& path, const std::string& origin) {
  DWARP_RETURN_IF_ERROR(CheckTokenFileMode(path, origin));
  auto text = ReadTextFile(path);
  if (!text.ok()) return NotFoundError(origin + ": cannot read token file '" + path + "'");
  std::string token = Trimmed(*text);
  if (token.empty()) return InvalidArgumentError(origin + ": token file '" + path + "' is empty");
  return token;
}

}  // namespace

Status CheckTokenFileMode(const std::string& path, const std::string& origin) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return NotFoundError(origin + ": cannot read token file '" + path + "'");
  const unsigned mode = static_cast<unsigned>(info.st_mode) & 07777u;
  if ((mode & kTokenFileForbiddenModeBits) == 0) return OkStatus();
  char octal[8];
  std::snprintf(octal, sizeof(octal), "%04o", mode);
  return FailedPreconditionError(origin + ": token file '" + path + "' has mode " + octal +
                                 ", which lets other users read or change it (or group members change it); "
                                 "run `chmod 600 " + path + "` (or 640/440 for a dedicated service group)");
}

bool TokensEqual(std::string_view sent, std::string_view expected) {
  // Every byte position up to the longer length is visited whatever the contents, and the length
  // difference is folded into the same accumulator: the time taken depends on the lengths only, never on
  // where the first differing byte is.
  const size_t longest = std::max(sent.size(), expected.size());
  size_t difference = sent.size() ^ expected.size();
  for (size_t i = 0; i < longest; ++i) {
    const unsigned char a = i < sent.size() ? static_cast<unsigned char>(sent[i]) : 0;
    const unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    difference |= static_cast<size_t>(a ^ b);
  }
  return difference == 0;
}

StatusOr<std::string> ReadTextFile(const std::string& path) { return ReadWholeFile(path, "file"); }

Status ResolveToken(ConnectionOptions& options, const std::string& token_file) {
  if (!options.token.empty()) return OkStatus();
  if (!token_file.empty()) {
    auto token = ReadToken(token_file, "--token-file");
    if (!token.ok()) return token.status();
    options.token = *token;
    return OkStatus();
  }
  if (const char* env = std::getenv("DWARP_TOKEN"); env != nullptr && *env != '\0') {
    options.token = Trimmed(env);
    return OkStatus();
  }
  if (const char* env = std::getenv("DWARP_TOKEN_FILE"); env != nullptr && *env != '\0') {
    auto token = ReadToken(env, "DWARP_TOKEN_FILE");
    if (!token.ok()) return token.status();
    options.token = *token;
  }
  return OkStatus();
}

Status CheckAddressPort(const std::string& address, const std::string& what, bool allow_any_port) {
  std::string_view rest = address;
  auto strip = [&rest](std::string_view prefix) {
    if (rest.substr(0, prefix.size()) != prefix) return false;
    rest.remove_prefix(prefix.size());
    return true;
  };
  if (strip("unix:") || strip("unix-abstract:") || strip("vsock:")) return OkStatus();
  if (strip("dns:") && strip("//")) {  // dns://authority/host:port
    const size_t slash = rest.find('/');
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (!strip("ipv4:")) strip("ipv6:");
  std::string_view port;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') return OkStatus();
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find(':') != colon) return OkStatus();  // no port, or bare IPv6
    port = rest.substr(colon + 1);
  }
  const std::string range = allow_any_port ? "0..65535 (0: any free port)" : "1..65535";
  const bool digits = !port.empty() && port.find_first_not_of("0123456789") == std::string_view::npos;
  if (!digits) {
    return InvalidArgumentError(what + " '" + address + "': port '" + std::string(port) + "' is not a number; expected " +
                                range);
  }
  const size_t significant = std::min(port.find_first_not_of('0'), port.size());
  const bool in_range = port.size() - significant <= 5 && std::stol(std::string(port)) <= 65535 &&
                        (allow_any_port || std::stol(std::string(port)) > 0);
  if (!in_range) {
    return InvalidArgumentError(what + " '" + address + "': port " + std::string(port) + " is out of range; expected " +
                                range);
  }
  return OkStatus();
}

StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& options) {
  if (options.address.empty()) return InvalidArgumentError("coordinator address is empty; expected host:port");
  DWARP_RETURN_IF_ERROR(CheckAddressPort(options.address, "coordinator address", /*allow_any_port=*/false));
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  if (options.max_reconnect_backoff.count() > 0) {
    const int max_ms = static_cast<int>(std::min<int64_t>(options.max_reconnect_backoff.count(), 3600 * 1000));
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(max_ms, 1000));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls_ca.empty()) {
    if (!options.tls_cert.empty() || !options.tls_key.empty())
      return InvalidArgumentError("a client certificate (--tls-cert/--tls-key) needs --tls-ca too");
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadTextFile(options.tls_ca);
    if (!ca.ok()) return NotFoundError("--tls-ca: " + ca.status().message());
    ssl.pem_root_certs = *ca;
    if (options.tls_cert.empty() != options.tls_key.empty())
      return InvalidArgumentError("--tls-cert and --tls-key go together; got only one of them");
    if (!options.tls_cert.empty()) {
      auto cert = ReadTextFile(options.tls_cert);
      if (!cert.ok()) return NotFoundError("--tls-cert: " + cert.status().message());
      auto key = ReadTextFile(options.tls_key);
      if (!key.ok()) return NotFoundError("--tls-key: " + key.status().message());
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(options.address, credentials, arguments);
}

void PrepareContext(grpc::ClientContext& context, const ConnectionOptions& options,
                    std::chrono::milliseconds timeout) {
  if (!options.token.empty()) context.AddMetadata("authorization", "Bearer " + options.token);
  if (timeout.count() > 0) context.set_deadline(std::chrono::system_clock::now() + timeout);
}

std::string TokenFromAuthorizationHeader(const std::string& header) {
  const std::string prefix = "Bearer ";
  if (header.size() <= prefix.size() || header.compare(0, prefix.size(), prefix) != 0) return "";
  return header.substr(prefix.size());
}

grpc::Status ToGrpcStatus(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (status.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kOutOfRange: code = grpc::StatusCode::OUT_OF_RANGE; break;
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case StatusCode::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kCancelled: code = grpc::StatusCode::CANCELLED; break;
    case StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
  }
  return grpc::Status(code, status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  const std::string& message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::OK: return OkStatus();
    case grpc::StatusCode::INVALID_ARGUMENT: return InvalidArgumentError(message);
    case grpc::StatusCode::NOT_FOUND: return NotFoundError(message);
    case grpc::StatusCode::FAILED_PRECONDITION: return FailedPreconditionError(message);
    case grpc::StatusCode::OUT_OF_RANGE: return OutOfRangeError(message);
    case grpc::StatusCode::UNAVAILABLE: return UnavailableError(message);
    case grpc::StatusCode::ALREADY_EXISTS: return AlreadyExistsError(message);
    case grpc::StatusCode::UNAUTHENTICATED: return UnauthenticatedError(message);
    case grpc::StatusCode::PERMISSION_DENIED: return UnauthenticatedError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return ResourceExhaustedError(message);
    case grpc::StatusCode::CANCELLED: return CancelledError(message);
    case grpc::StatusCode::DEADLINE_EXCEEDED: return DeadlineExceededError(message);
    default: return InternalError(message);
  }
}

Status DescribeCallFailure(const grpc::Status& status, const std::string& address) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
    return UnavailableError("coordinator unreachable at " + address + " (" + status.error_message() + ")");
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    return DeadlineExceededError("coordinator at " + address + " did not answer in time (" +
                                 status.error_message() + ")");
  return FromGrpcStatus(status);
}

}  // namespace dwarp::rpc
