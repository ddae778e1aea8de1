// CoordinatorServer: the gRPC face of the coordinator. SweepService and WorkerService (proto/dwarp/v1) are
// thin adapters: check the token, convert Protobuf <-> the scheduler's rows, call the Scheduler, convert
// its Status once (rpc::ToGrpcStatus). Also serves grpc.health.v1 (SERVING, NOT_SERVING while draining)
// and server reflection.
//
// Security (DESIGN.md "Secure by default"): with a token every SweepService and WorkerService call must
// carry `authorization: Bearer <token>` (UNAUTHENTICATED otherwise); without one, Start refuses a listen
// address that is not loopback unless `insecure`. Whatever the token, WorkerService calls after Register
// must also carry the credential Register issued to the worker they name (worker_credentials.h): a caller
// can act only as the worker whose credential it holds. TLS from a certificate and key; with a client CA, clients
// must present a certificate it signed (mTLS).
//
// Size: no message sent or received is larger than max_message_bytes (rpc::kMaxMessageBytes unless a test
// lowers it: ServerOptions), however large the sweep: Submit answers a summary (a dry run lists the jobs that fit and counts
// the others), Results, List and DWarp answer a page at a time (page_size; all at once only when they fit,
// else RESOURCE_EXHAUSTED saying to page), and Watch splits a large snapshot over snapshot_jobs events.
//
// Thread-safety: Start/Drain/Shutdown from one controlling thread; RPCs run on gRPC's threads.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/scheduler.h"

namespace grpc {
class Server;
}

namespace dwarp::coordinator {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free port (see port())
  std::string token;                       // empty: no token required
  bool insecure = false;                   // allow a non-loopback address without a token
  std::string tls_cert, tls_key;           // PEM files; both or neither
  std::string tls_client_ca;               // PEM file: require and verify client certificates
  // The largest message sent or received, in bytes: 0 for rpc::kMaxMessageBytes (what clients accept), else
  // at least kMinMessageBytes (tests lower it to exercise paging with small sweeps).
  int max_message_bytes = 0;
  static constexpr int kMinMessageBytes = 64 * 1024;
};

// Whether a listen address (host:port, [v6]:port, with an optional ipv4:, ipv6: or dns:/// scheme) is
// loopback, decided by the parsed address: an IPv4 address in 127.0.0.0/8, ::1, ::ffff:127.x.x.x, or the
// name "localhost". Any other name (127.example.com, localhost.example.com) is not.
bool IsLoopbackAddress(const std::string& listen);

// The warning Start logs when a token guards a non-loopback address without TLS (the token then crosses
// the network in cleartext); empty when there is nothing to warn about. Allowed, not refused: a private
// network (a Slurm cluster's, a Kubernetes pod network) may be trusted by its operator.
std::string CleartextTokenWarning(const ServerOptions& options);

// What Start checks before it binds, for a caller that must refuse a configuration before it opens
// anything else (the database): InvalidArgument for a refused configuration (non-loopback without token,
// half a TLS pair, a port outside 0..65535, which gRPC would wrap, max_message_bytes out of range), NotFound
// for unreadable certificate files.
Status CheckServerOptions(const ServerOptions& options);

class CoordinatorServer {
 public:
  // Binds and starts serving. Worker credentials (worker_credentials.h) are kept in `credential_store`
  // (normally the scheduler's store, so that they survive a restart; it must outlive the server), or in a
  // store of the server's own when it is null (they then end with the server). The errors of
  // CheckServerOptions, Internal when the credentials cannot be read, and Unavailable when the address
  // cannot be bound.
  static StatusOr<std::unique_ptr<CoordinatorServer>> Start(Scheduler* scheduler, const ServerOptions& options,
                                                            SweepStore* credential_store = nullptr);
  ~CoordinatorServer();

  int port() const { return port_; }
  // Health turns NOT_SERVING (load balancers and probes stop sending work); RPCs still answer.
  void Drain();
  // Stops accepting calls, waits up to deadline_ms for running ones (long-polls end at once). Idempotent.
  void Shutdown(int64_t deadline_ms = 5000);
  // Blocks until Shutdown.
  void Wait();

 private:
  struct Services;
  CoordinatorServer() = default;

  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace dwarp::coordinator
