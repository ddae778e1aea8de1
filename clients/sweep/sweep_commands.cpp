#include "clients/sweep/sweep_commands.h"

#include <CLI/CLI.hpp>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "common/file_io.h"
#include "common/sweep_spec.h"

namespace dwarp::clients {
namespace {

namespace fs = std::filesystem;

CommandResult Ok() { return {}; }
CommandResult Remote(Status status) { return {std::move(status), false}; }
CommandResult Local(Status status) { return {std::move(status), true}; }

std::string Lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// A message about a file names it once, at the front.
Status NamingFile(const Status& status, const std::string& path) {
  if (status.message().find(path) != std::string::npos) return status;
  return Status(status.code(), path + ": " + status.message());
}


}  // namespace

Status CallCoordinator(SweepClient& client, const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext context;
  rpc::PrepareContext(context, client.options, client.timeout);
  const grpc::Status status = call(&context);
  if (status.ok()) return OkStatus();
  Status described = rpc::DescribeCallFailure(status, client.options.address);
  if (described.code() == StatusCode::kUnauthenticated) {
    // The hint only where the coordinator's own message does not already say where a token comes from.
    const bool hinted = described.message().find("--token-file") != std::string::npos;
    return UnauthenticatedError("coordinator at " + client.options.address + " refused the call: " +
                                described.message() +
                                (hinted ? "" : " (set --token-file, DWARP_TOKEN or DWARP_TOKEN_FILE)"));
  }
  return described;
}

Status CallAboutSweep(SweepClient& client, const std::string& sweep_id,
                      const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  Status status = CallCoordinator(client, call);
  if (status.code() == StatusCode::kNotFound && status.message().find(sweep_id) == std::string::npos)
    return NotFoundError("sweep '" + sweep_id + "' not found (" + status.message() + ")");
  return status;
}

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded: return kExitUnreachable;
    case StatusCode::kUnauthenticated: return kExitUnauthenticated;
    default: return kExitRefused;
  }
}

int ExitCodeFor(const CommandResult& result) {
  if (result.status.ok()) return kExitOk;
  return result.local_input ? kExitUsage : ExitCodeFor(result.status);
}

StatusOr<SweepClient> ConnectSweepClient(const ConnectionFlags& flags) {
  SweepClient client;
  client.options.address = flags.coordinator;
  if (client.options.address.empty()) {
    const char* env = std::getenv("DWARP_COORDINATOR");
    client.options.address = (env != nullptr && *env != '\0') ? env : rpc::kDefaultCoordinatorAddress;
  }
  client.options.tls_ca = flags.tls_ca;
  client.options.tls_cert = flags.tls_cert;
  client.options.tls_key = flags.tls_key;
  if (!(flags.timeout_seconds > 0))
    return InvalidArgumentError("--timeout = " + FormatScore(flags.timeout_seconds) + "; expected seconds > 0");
  client.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_seconds * 1000));
  DWARP_RETURN_IF_ERROR(rpc::ResolveToken(client.options, flags.token_file));
  auto channel = rpc::MakeChannel(client.options);
  if (!channel.ok()) return channel.status();
  client.stub = v1::SweepService::NewStub(*channel);
  return client;
}

StatusOr<v1::SubmitRequest> BuildSubmitRequest(const SubmitOptions& options, SweepSpec* composed) {
  // Composed and validated here first (the file read once; its extension checked by LoadSweepSpecFile), so
  // that a bad file fails at once, with the file's name, and needs no coordinator.
  auto spec = LoadSweepSpecFile(options.sweep_file, options.overrides);
  if (!spec.ok()) return NamingFile(spec.status(), options.sweep_file);
  const std::string& path = options.sweep_file;
  // What is sent is the sweep as composed here: config groups merged, overrides applied, paths made absolute,
  // so a coordinator on another machine needs none of this machine's config files.
  v1::SubmitRequest request;
  request.set_sweep_text(CanonicalSweepJson(*spec));
  request.set_format("json");
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) return InvalidArgumentError(path + ": cannot make the path absolute: " + ec.message());
  request.set_base_dir(absolute.lexically_normal().parent_path().string());
  request.set_source_name(path);
  request.set_dry_run(options.dry_run);
  request.set_request_id(options.request_id.empty() ? NewRequestId() : options.request_id);
  if (composed != nullptr) *composed = std::move(*spec);
  return request;
}

std::string NewRequestId() {
  std::random_device device;
  std::string id = "cli-";
  constexpr char kHex[] = "0123456789abcdef";
  for (int word = 0; word < 4; ++word) {
    uint32_t bits = device();
    for (int digit = 0; digit < 8; ++digit, bits >>= 4) id += kHex[bits & 0xf];
  }
  return id;
}

Status SubmitWithRetries(SweepClient& client, const v1::SubmitRequest& request, v1::SubmitResponse* response,
                         std::ostream& notes) {
  std::chrono::milliseconds delay = client.retry_delay;
  for (int attempt = 1;; ++attempt) {
    response->Clear();
    Status status = CallCoordinator(client, [&](grpc::ClientContext* context) {
      return client.stub->Submit(context, request, response);
    });
    const bool transient = status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded;
    if (status.ok() || !transient || request.request_id().empty() || attempt >= kSubmitAttempts) return status;
    notes << "submit try " << attempt << " of " << kSubmitAttempts << " failed (" << status.message()
          << "); sending it again as request " << request.request_id() << std::endl;
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
}

StatusOr<v1::ResultsResponse> FetchResults(SweepClient& client, const std::string& sweep_id, bool include_metrics) {
  v1::ResultsResponse all;
  v1::ResultsRequest request;
  request.set_sweep_id(sweep_id);
  request.set_include_metrics(include_metrics);
  request.set_page_size(kResultsPageSize);
  while (true) {
    v1::ResultsResponse page;
    Status status = CallAboutSweep(client, sweep_id, [&](grpc::ClientContext* context) {
      return client.stub->Results(context, request, &page);
    });
    if (!status.ok()) return status;
    *all.mutable_sweep() = page.sweep();  // the latest counts
    for (v1::Job& job : *page.mutable_jobs()) *all.add_jobs() = std::move(job);
    for (v1::JobMetrics& metrics : *page.mutable_metrics()) *all.add_metrics() = std::move(metrics);
    if (page.next_page_token().empty()) return all;
    // A token that does not move on would loop for ever.
    if (page.jobs_size() == 0 || page.next_page_token() == request.page_token())
      return InternalError("coordinator at " + client.options.address + " sent page token '" +
                           page.next_page_token() + "' for a page of " + std::to_string(page.jobs_size()) +
                           " jobs of sweep '" + sweep_id + "'; expected a new token after a page of jobs");
    request.set_page_token(page.next_page_token());
  }
}

namespace {

// A token that does not move on would loop for ever: InternalError unless the page moved on.
Status CheckPageMovedOn(const SweepClient& client, const std::string& old_token, const std::string& new_token,
                        int page_elements, const std::string& what) {
  if (page_elements > 0 && new_token != old_token) return OkStatus();
  return InternalError("coordinator at " + client.options.address + " sent page token '" + new_token +
                       "' for a page of " + std::to_string(page_elements) + " " + what +
                       "; expected a new token after a page of " + what);
}

}  // namespace

StatusOr<v1::ListSweepsResponse> FetchSweepList(SweepClient& client) {
  v1::ListSweepsResponse all;
  v1::ListSweepsRequest request;
  request.set_page_size(kListPageSize);
  while (true) {
    v1::ListSweepsResponse page;
    Status status = CallCoordinator(client, [&](grpc::ClientContext* context) {
      return client.stub->List(context, request, &page);
    });
    if (!status.ok()) return status;
    for (v1::Sweep& sweep : *page.mutable_sweeps()) *all.add_sweeps() = std::move(sweep);
    if (page.next_page_token().empty()) return all;
    DWARP_RETURN_IF_ERROR(
        CheckPageMovedOn(client, request.page_token(), page.next_page_token(), page.sweeps_size(), "sweeps"));
    request.set_page_token(page.next_page_token());
  }
}

StatusOr<v1::DWarpResponse> FetchDWarp(SweepClient& client, const std::string& sweep_id) {
  v1::DWarpResponse all;
  v1::DWarpRequest request;
  request.set_sweep_id(sweep_id);
  request.set_page_size(kDWarpPageSize);
  while (true) {
    v1::DWarpResponse page;
    Status status = CallAboutSweep(client, sweep_id, [&](grpc::ClientContext* context) {
      return client.stub->DWarp(context, request, &page);
    });
    if (!status.ok()) return status;
    *all.mutable_sweep() = page.sweep();  // the latest counts
    for (v1::DWarpRecord& record : *page.mutable_records()) *all.add_records() = std::move(record);
    if (page.next_page_token().empty()) return all;
    DWARP_RETURN_IF_ERROR(CheckPageMovedOn(client, request.page_token(), page.next_page_token(), page.records_size(),
                                           "d_warp records of sweep '" + sweep_id + "'"));
    request.set_page_token(page.next_page_token());
  }
}

CommandResult RunSubmit(SweepClient& client, const v1::SubmitRequest& request, bool watch, std::ostream& out,
                        bool tty) {
  v1::SubmitResponse response;
  Status status = SubmitWithRetries(client, request, &response, std::cerr);
  if (!status.ok()) return Remote(status);
  out << FormatSubmit(response, /*list_jobs=*/request.dry_run()) << std::flush;
  if (watch && !request.dry_run()) return RunWatch(client, response.sweep().sweep_id(), out, tty);
  return Ok();
}

CommandResult RunList(SweepClient& client, std::ostream& out) {
  StatusOr<v1::ListSweepsResponse> response = FetchSweepList(client);
  if (!response.ok()) return Remote(response.status());
  out << FormatSweepList(*response);
  return Ok();
}

CommandResult RunStatus(SweepClient& client, const std::string& sweep_id, std::ostream& out) {
  // Results carries the sweep and every job (without curves), which is what the status table shows.
  auto response = FetchResults(client, sweep_id, /*include_metrics=*/false);
  if (!response.ok()) return Remote(response.status());
  out << FormatSweepStatus(response->sweep(), {response->jobs().begin(), response->jobs().end()});
  return Ok();
}

CommandResult RunWatch(SweepClient& client, const std::string& sweep_id, std::ostream& out, bool tty) {
  constexpr auto kRedrawInterval = std::chrono::milliseconds(250);
  grpc::ClientContext context;
  rpc::PrepareContext(context, client.options);  // no deadline: a sweep may run for days
  v1::WatchRequest request;
  request.set_sweep_id(sweep_id);
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchEvent>> reader = client.stub->Watch(&context, request);

  std::mutex mutex;
  std::condition_variable wake;
  WatchView view;              // guarded by mutex
  bool dirty = false;          // guarded by mutex: the view changed since it was last drawn
  bool reading_done = false;   // guarded by mutex
  bool got_event = false;      // guarded by mutex
  bool timed_out = false;      // guarded by mutex
  auto draw = [&]() { out << "\x1b[H\x1b[J" << view.Render() << std::flush; };

  // The reader blocks in Read, so a second thread keeps time: it redraws a terminal at most every
  // kRedrawInterval, and cancels the call when the coordinator sends nothing within the timeout.
  std::thread clock([&]() {
    const auto first_event_deadline = std::chrono::steady_clock::now() + client.timeout;
    std::unique_lock<std::mutex> lock(mutex);
    while (!reading_done) {
      wake.wait_for(lock, kRedrawInterval);
      if (reading_done) break;
      if (!got_event && !timed_out && std::chrono::steady_clock::now() >= first_event_deadline) {
        timed_out = true;
        context.TryCancel();
      }
      if (tty && dirty) {
        draw();
        dirty = false;
      }
    }
  });

  bool finished = false;
  v1::WatchEvent event;
  while (reader->Read(&event)) {
    std::lock_guard<std::mutex> lock(mutex);
    got_event = true;
    view.Apply(event);
    if (tty) {
      dirty = true;
    } else if (std::string line = view.PlainLine(event); !line.empty()) {
      out << line << "\n" << std::flush;
    }
    if (view.has_snapshot() && view.finished()) {
      finished = true;
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    reading_done = true;
  }
  wake.notify_all();
  clock.join();
  if (tty && view.has_snapshot()) draw();  // the final picture, however recently the last one was drawn

  if (finished) {
    // The coordinator ends the stream after the final event; not waiting for that keeps a slow close
    // from holding the command.
    context.TryCancel();
    (void)reader->Finish();
    return Ok();
  }
  const grpc::Status status = reader->Finish();
  if (timed_out)
    return Remote(DeadlineExceededError("coordinator at " + client.options.address + " sent no watch event for sweep '" +
                                        sweep_id + "' within " + FormatScore(client.timeout.count() / 1000.0) + " s"));
  if (!view.has_snapshot()) {
    if (status.ok())
      return Remote(UnavailableError("the watch stream of sweep '" + sweep_id + "' ended before its first event"));
    Status described = rpc::DescribeCallFailure(status, client.options.address);
    if (described.code() == StatusCode::kNotFound && described.message().find(sweep_id) == std::string::npos)
      described = NotFoundError("sweep '" + sweep_id + "' not found (" + described.message() + ")");
    return Remote(described);
  }
  // The sweep was being watched and is not finished: the stream broke.
  std::string why = status.ok() ? "the coordinator closed it" : rpc::DescribeCallFailure(status, client.options.address).message();
  return Remote(UnavailableError("the watch stream of sweep '" + sweep_id + "' broke before the sweep finished (state " +
                                 SweepStateName(view.sweep().state()) + "): " + why));
}

CommandResult RunResults(SweepClient& client, const std::string& sweep_id, OutputFormat format,
                         const std::string& out_file, std::ostream& out) {
  auto fetched = FetchResults(client, sweep_id, /*include_metrics=*/false);
  if (!fetched.ok()) return Remote(fetched.status());
  const v1::ResultsResponse& response = *fetched;
  const std::string text = FormatResults(response, format);
  if (out_file.empty()) {
    out << text;
    return Ok();
  }
  Status written = WriteFileAtomically(out_file, text, "-o");
  if (!written.ok()) return Local(written);
  out << "wrote " << response.jobs_size() << " rows to " << out_file << "\n";
  return Ok();
}

CommandResult RunDWarp(SweepClient& client, const std::string& sweep_id, OutputFormat format, std::ostream& out) {
  StatusOr<v1::DWarpResponse> response = FetchDWarp(client, sweep_id);
  if (!response.ok()) return Remote(response.status());
  out << FormatDWarp(*response, format);
  return Ok();
}

CommandResult RunCancel(SweepClient& client, const std::string& sweep_id, std::ostream& out) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  v1::CancelSweepResponse response;
  Status status = CallAboutSweep(client, sweep_id, [&](grpc::ClientContext* context) {
    return client.stub->Cancel(context, request, &response);
  });
  if (!status.ok()) return Remote(status);
  out << FormatCancel(response);
  return Ok();
}

CommandResult RunWorkers(SweepClient& client, std::ostream& out) {
  v1::ListWorkersRequest request;
  v1::ListWorkersResponse response;
  Status status = CallCoordinator(client, [&](grpc::ClientContext* context) {
    return client.stub->ListWorkers(context, request, &response);
  });
  if (!status.ok()) return Remote(status);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  out << FormatWorkers(response, now_ms);
  return Ok();
}

void AddConnectionFlags(CLI::App* command, ConnectionFlags& flags) {
  command->add_option("--coordinator", flags.coordinator,
                      std::string("Coordinator address host:port (default: $DWARP_COORDINATOR, else ") +
                          rpc::kDefaultCoordinatorAddress + ")");
  command->add_option("--token-file", flags.token_file, "File holding the token (default: $DWARP_TOKEN, $DWARP_TOKEN_FILE)");
  command->add_option("--tls-ca", flags.tls_ca, "PEM file of the CA that signed the coordinator's certificate");
  command->add_option("--tls-cert", flags.tls_cert, "Client certificate (PEM) for mutual TLS");
  command->add_option("--tls-key", flags.tls_key, "Client key (PEM) for mutual TLS");
  command->add_option("--timeout", flags.timeout_seconds, "Seconds one call may take (watch: until the first event)")
      ->capture_default_str();
}

void FinishCommand(const CommandResult& result) {
  if (result.status.ok()) return;
  std::cerr << "error: " << result.status.message() << std::endl;
  throw CLI::RuntimeError(ExitCodeFor(result));
}

namespace {

// Builds the client from the flags, then runs `body` with it.
void WithClient(const ConnectionFlags& flags, const std::function<CommandResult(SweepClient&)>& body) {
  auto client = ConnectSweepClient(flags);
  if (!client.ok()) FinishCommand(Local(client.status()));
  FinishCommand(body(*client));
}

StatusOr<OutputFormat> ChooseFormat(const std::string& format, const std::string& out_file) {
  if (!format.empty()) return ParseOutputFormat(format);
  // -o results.csv means CSV without saying it twice.
  const std::string extension = Lowercase(fs::path(out_file).extension().string());
  if (extension == ".csv") return OutputFormat::kCsv;
  if (extension == ".json") return OutputFormat::kJson;
  return OutputFormat::kTable;
}

// A subcommand that names one sweep by its id and takes the connection flags; it runs `run` on that sweep
// with a client of the coordinator.
void AddOneSweepCommand(CLI::App& app, const std::string& name, const std::string& description,
                        std::function<CommandResult(SweepClient&, const std::string& sweep)> run) {
  auto flags = std::make_shared<ConnectionFlags>();
  auto sweep = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(name, description);
  cmd->add_option("sweep", *sweep, kSweepArgumentHelp)->required();
  AddConnectionFlags(cmd, *flags);
  cmd->callback([flags, sweep, run = std::move(run)]() {
    WithClient(*flags, [&](SweepClient& client) { return run(client, *sweep); });
  });
}

}  // namespace

void AddSweepCommands(CLI::App& app) {
  const bool tty = ::isatty(STDOUT_FILENO) == 1;

  {
    auto flags = std::make_shared<ConnectionFlags>();
    auto options = std::make_shared<SubmitOptions>();
    CLI::App* cmd = app.add_subcommand("submit", "Submit a sweep file (configs/sweeps/) to the coordinator");
    cmd->add_option("sweep", options->sweep_file, "Sweep file (.yaml, .yml or .json)")->required();
    cmd->add_option("overrides", options->overrides, "Hydra-style overrides: key=value, ~key, +key=value");
    cmd->add_flag("--dry-run", options->dry_run, "Validate and expand on the coordinator, store nothing; list the jobs");
    cmd->add_flag("--watch", options->watch, "Watch the sweep after submitting it");
    cmd->add_option("--request-id", options->request_id,
                    "Name this submission (default: a random id): submitting again with the same id and sweep "
                    "answers the sweep it stored instead of storing another");
    AddConnectionFlags(cmd, *flags);
    cmd->callback([flags, options, tty]() {
      // The file is checked before the connection options, so that a bad file is reported as such.
      auto request = BuildSubmitRequest(*options);
      if (!request.ok()) FinishCommand(Local(request.status()));
      WithClient(*flags, [&](SweepClient& client) {
        return RunSubmit(client, *request, options->watch, std::cout, tty);
      });
    });
  }
  {
    auto flags = std::make_shared<ConnectionFlags>();
    CLI::App* cmd = app.add_subcommand("list", "List the coordinator's sweeps");
    AddConnectionFlags(cmd, *flags);
    cmd->callback([flags]() { WithClient(*flags, [](SweepClient& client) { return RunList(client, std::cout); }); });
  }
  AddOneSweepCommand(app, "status", "A sweep's counts and one row per job",
                     [](SweepClient& client, const std::string& sweep) { return RunStatus(client, sweep, std::cout); });
  AddOneSweepCommand(app, "watch", "Follow a sweep until it is done or cancelled",
                     [tty](SweepClient& client, const std::string& sweep) {
                       return RunWatch(client, sweep, std::cout, tty);
                     });
  {
    auto flags = std::make_shared<ConnectionFlags>();
    auto sweep = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>();
    auto out_file = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("results", "One row per job of a sweep: its key, state and result");
    cmd->add_option("sweep", *sweep, kSweepArgumentHelp)->required();
    cmd->add_option("--format", *format, "table, csv or json (default: by -o's extension, else table)");
    cmd->add_option("-o,--out", *out_file, "Write to this file instead of stdout");
    AddConnectionFlags(cmd, *flags);
    cmd->callback([flags, sweep, format, out_file]() {
      auto chosen = ChooseFormat(*format, *out_file);
      if (!chosen.ok()) FinishCommand(Local(chosen.status()));
      WithClient(*flags, [&](SweepClient& client) { return RunResults(client, *sweep, *chosen, *out_file, std::cout); });
    });
  }
  {
    auto flags = std::make_shared<ConnectionFlags>();
    auto sweep = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>("table");
    CLI::App* cmd = app.add_subcommand("dwarp", "The d_warp table of a sweep, with each group's score curve");
    cmd->add_option("sweep", *sweep, kSweepArgumentHelp)->required();
    cmd->add_option("--format", *format, "table, csv or json")->capture_default_str();
    AddConnectionFlags(cmd, *flags);
    cmd->callback([flags, sweep, format]() {
      auto chosen = ParseOutputFormat(*format);
      if (!chosen.ok()) FinishCommand(Local(chosen.status()));
      WithClient(*flags, [&](SweepClient& client) { return RunDWarp(client, *sweep, *chosen, std::cout); });
    });
  }
  AddOneSweepCommand(app, "cancel", "Cancel a sweep: queued jobs at once, running ones at their next heartbeat",
                     [](SweepClient& client, const std::string& sweep) { return RunCancel(client, sweep, std::cout); });
  {
    auto flags = std::make_shared<ConnectionFlags>();
    CLI::App* cmd = app.add_subcommand("workers", "The worker daemons the coordinator knows");
    AddConnectionFlags(cmd, *flags);
    cmd->callback([flags]() { WithClient(*flags, [](SweepClient& client) { return RunWorkers(client, std::cout); }); });
  }
}

}  // namespace dwarp::clients
