// The `dwarp` commands that talk to the coordinator's SweepService (proto/dwarp/v1/dwarp.proto):
//
//   dwarp submit SWEEP.yaml [key=value ...] [--dry-run] [--watch] [--request-id ID]
//   dwarp list
//   dwarp status SWEEP
//   dwarp watch SWEEP
//   dwarp results SWEEP [--format table|csv|json] [-o FILE]   (format default: -o's extension, else table)
//   dwarp dwarp SWEEP [--format table|csv|json]
//   dwarp cancel SWEEP
//   dwarp workers
//
// Every command takes the connection options --coordinator HOST:PORT (else $DWARP_COORDINATOR, else
// rpc::kDefaultCoordinatorAddress), --token-file (else $DWARP_TOKEN, else $DWARP_TOKEN_FILE), --tls-ca,
// --tls-cert, --tls-key and --timeout SECONDS (default 30, per call; for `watch`, how long to wait for the
// first event: a sweep may be watched for days).
//
// `submit` parses and validates the sweep file locally first (common/sweep_spec.h: config groups of its
// `defaults` list, overrides, relative paths resolved against its folder), so a bad file fails without a
// coordinator and names the file; the coordinator then gets that composed sweep as JSON (so it needs none
// of this machine's config files), the file's absolute folder and its name. Each invocation names its
// submission with a random request id (or --request-id) and sends it again, with that id, when the
// coordinator could not be reached or did not answer in time: a Submit that was stored before the answer
// was lost then answers the stored sweep instead of storing a second one.
//
// `status`, `results` and `tensorboard` read a sweep's jobs a page at a time (FetchResults), so a sweep of
// any size the coordinator stores can be read; `watch` takes a snapshot that may come in several events.
//
// `watch` on a terminal redraws a compact view (counts, running jobs, d_warp) at most 4 times a second;
// otherwise it prints one line per event. It returns when the sweep is DONE or CANCELLED.
//
// Output goes to stdout (or -o FILE); errors go to stderr as "error: <what is wrong>".
//
// Exit codes of the process (ExitCodeFor maps a command's result to them):
//   0  ok
//   1  the coordinator refused the request (invalid sweep, sweep not found, ...): its message is printed
//   2  usage errors (CLI11's, see clients/dwarp_main.cpp) and invalid local input (an unreadable or invalid
//      sweep file, a bad --format, an unwritable -o file, unreadable TLS files)
//   3  the coordinator is unreachable or did not answer in time, or the watch stream broke
//   4  the coordinator refused the token (unauthenticated or permission denied)
//
// Thread-safety: Run* calls may share one SweepClient (its gRPC stub is thread-safe); each call has its own
// context. RunWatch runs one helper thread (redraw clock and first-event timeout), joined before it returns.
// AddSweepCommands' callbacks write std::cout / std::cerr.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "clients/exit_codes.h"
#include "clients/sweep/sweep_format.h"
#include "common/rpc/connection.h"
#include "common/status.h"
#include "common/sweep_spec.h"
#include "dwarp/v1/dwarp.grpc.pb.h"

namespace CLI {
class App;
}

namespace dwarp::clients {

// The exit code for a command's final status: OK 0; Unavailable, DeadlineExceeded 3; Unauthenticated 4;
// anything else the coordinator said 1. Local input errors (CommandResult::local_input) exit 2 instead.
int ExitCodeFor(const Status& status);

// What a command ends with: OK, a failure of the call, or invalid local input (bad file, bad flag value),
// which exits 2 whatever its code.
struct CommandResult {
  Status status;
  bool local_input = false;  // true: exit 2
};
// ExitCodeFor(status), or 2 for local input.
int ExitCodeFor(const CommandResult& result);

// Where and how a command reaches the coordinator, and how long one call may take.
struct SweepClient {
  std::unique_ptr<v1::SweepService::StubInterface> stub;
  rpc::ConnectionOptions options;            // address and token (for PrepareContext and messages)
  std::chrono::milliseconds timeout{30000};  // per unary call; watch: until the first event
  std::chrono::milliseconds retry_delay{1000};  // before a Submit's second try; doubled for each further one
};

// How many times a Submit is sent, at most (SubmitWithRetries).
inline constexpr int kSubmitAttempts = 3;
// Jobs asked for per Results page (the coordinator may answer fewer, to stay within its message limit).
inline constexpr int kResultsPageSize = 2000;
// Sweeps asked for per List page, and d_warp records per DWarp page (the coordinator may answer fewer).
inline constexpr int kListPageSize = 1000;
inline constexpr int kDWarpPageSize = 1000;

// The connection options as given on the command line.
struct ConnectionFlags {
  std::string coordinator;  // empty: $DWARP_COORDINATOR, else rpc::kDefaultCoordinatorAddress
  std::string token_file;
  std::string tls_ca, tls_cert, tls_key;
  double timeout_seconds = 30;
};

// Resolves the address and token and makes the channel (which connects lazily, on the first call). Errors
// are local input errors (exit 2): an unreadable token or certificate file, a non-positive timeout.
StatusOr<SweepClient> ConnectSweepClient(const ConnectionFlags& flags);

struct SubmitOptions {
  std::string sweep_file;
  std::vector<std::string> overrides;
  bool dry_run = false;
  bool watch = false;
  std::string request_id;  // empty: NewRequestId()
};

// A fresh request id for one submission: "cli-" and 32 hex digits (128 bits from std::random_device).
std::string NewRequestId();

// The Submit request for a sweep file, checked locally first: LoadSweepSpecFile reads it once (its extension
// .yaml, .yml or .json), composes it, applies the overrides and validates it. Every error names the file.
// This validation is the user's early answer; the coordinator's, at Submit, is the one of record.
// sweep_text is CanonicalSweepJson of the composed sweep, with format json and no overrides; base_dir is the
// file's absolute folder; source_name the path as given; request_id options.request_id or a new one. When
// `composed` is not null it receives the composed sweep (`dwarp run` needs its name).
StatusOr<v1::SubmitRequest> BuildSubmitRequest(const SubmitOptions& options, SweepSpec* composed = nullptr);

// The commands. Each writes its output to `out` (watch: redraws when `tty`) and returns the first failure;
// CommandResult::local_input marks the ones that are the user's input (exit 2).
// RunSubmit sends a request from BuildSubmitRequest; with `watch` (and no dry run) it then watches.
CommandResult RunSubmit(SweepClient& client, const v1::SubmitRequest& request, bool watch, std::ostream& out,
                        bool tty);
CommandResult RunList(SweepClient& client, std::ostream& out);
CommandResult RunStatus(SweepClient& client, const std::string& sweep_id, std::ostream& out);
CommandResult RunWatch(SweepClient& client, const std::string& sweep_id, std::ostream& out, bool tty);
// -o FILE: written atomically (nothing is left behind on failure), and `out` gets "wrote N rows to FILE";
// empty: the table goes to `out`.
CommandResult RunResults(SweepClient& client, const std::string& sweep_id, OutputFormat format,
                        const std::string& out_file, std::ostream& out);
CommandResult RunDWarp(SweepClient& client, const std::string& sweep_id, OutputFormat format, std::ostream& out);
CommandResult RunCancel(SweepClient& client, const std::string& sweep_id, std::ostream& out);
CommandResult RunWorkers(SweepClient& client, std::ostream& out);

// Sends `request` (the same request, so the same request id, every time) until the coordinator answers,
// at most kSubmitAttempts times: again only after Unavailable or DeadlineExceeded, and only when the request
// has a request id (without one a retry could store the sweep twice). Each retry is noted on `notes`.
Status SubmitWithRetries(SweepClient& client, const v1::SubmitRequest& request, v1::SubmitResponse* response,
                         std::ostream& notes);
// The help of every command's SWEEP argument: the coordinator takes a sweep id or a sweep name, which means
// the latest sweep of that name.
inline constexpr char kSweepArgumentHelp[] = "Sweep id (e.g. quickstart-1), or a sweep name: its latest sweep";

// Every job of a sweep (with include_metrics, every stored curve too) and its latest summary, read a page
// of kResultsPageSize jobs at a time and merged into one response (next_page_token empty).
StatusOr<v1::ResultsResponse> FetchResults(SweepClient& client, const std::string& sweep_id, bool include_metrics);
// Every sweep, read a page of kListPageSize at a time and merged (next_page_token empty).
StatusOr<v1::ListSweepsResponse> FetchSweepList(SweepClient& client);
// Every d_warp record of a sweep and its latest summary, read a page of kDWarpPageSize at a time and merged.
StatusOr<v1::DWarpResponse> FetchDWarp(SweepClient& client, const std::string& sweep_id);

// One unary SweepService call with the token and the per-call deadline; failures described for people
// (unreachable, and unauthenticated with a hint where the token comes from).
Status CallCoordinator(SweepClient& client, const std::function<grpc::Status(grpc::ClientContext*)>& call);
// The same for a call about one sweep: NOT_FOUND always names the sweep, whatever the coordinator's wording.
Status CallAboutSweep(SweepClient& client, const std::string& sweep_id,
                      const std::function<grpc::Status(grpc::ClientContext*)>& call);
// Adds the connection options every command takes (top of this header) to a subcommand.
void AddConnectionFlags(CLI::App* command, ConnectionFlags& flags);
// A failed result: "error: ..." on stderr, then CLI::RuntimeError with its exit code. OK: returns.
void FinishCommand(const CommandResult& result);

// Registers the commands above as subcommands of `app`. A failing command prints "error: ..." to stderr
// and throws CLI::RuntimeError with its exit code.
void AddSweepCommands(CLI::App& app);

}  // namespace dwarp::clients
