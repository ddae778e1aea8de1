#include "worker/engine/subspace_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "worker/engine/fused_install.h"

namespace dwarp::engine {
namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + ("'" + s + "'");
  return out;
}

std::string ListNames(const std::vector<std::string>& names) {
  constexpr size_t kShown = 12;
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
  std::string out = Join(shown);
  if (names.size() > kShown) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// The environment variable `name` as a switch: unset or empty gives `unset`, "0" false, "1" true; any other
// value is an error naming the variable and the value.
StatusOr<bool> EnvironmentSwitch(const char* name, bool unset) {
  const char* flag = std::getenv(name);
  if (flag == nullptr || *flag == '\0') return unset;
  if (std::strcmp(flag, "1") == 0) return true;
  if (std::strcmp(flag, "0") == 0) return false;
  return InvalidArgumentError(std::string("environment variable ") + name + " is '" + flag +
                              "'; expected 0 or 1 (or unset)");
}

// SubspaceOptions::batched when unset: on the CPU always; on CUDA when DWARP_BATCHED_FASTFOOD_CUDA=1. The
// variable is checked on every device, so a misspelt value is an error on the CPU too.
StatusOr<bool> BatchedByDefault(const at::Device& device) {
  auto cuda = EnvironmentSwitch("DWARP_BATCHED_FASTFOOD_CUDA", false);
  if (!cuda.ok()) return cuda.status();
  return device.is_cpu() || *cuda;
}

// SubspaceOptions::fused_install when unset: DWARP_FUSED_INSTALL when set (0 or 1), else as the batched
// projection's default. A value other than 0 or 1 is an error naming it.
StatusOr<bool> FusedInstallByDefault(const at::Device& device) {
  auto batched = BatchedByDefault(device);
  if (!batched.ok()) return batched.status();
  return EnvironmentSwitch("DWARP_FUSED_INSTALL", *batched);
}

bool MatchesAny(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    if (NameHasPrefix(name, p)) return true;
  }
  return false;
}

// The submodule that owns the parameter `path` ("layer1.0.conv1.weight" -> layer1.0.conv1) and the
// slot's name within it.
std::pair<torch::jit::Module, std::string> OwnerOf(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module owner = root;
  size_t begin = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', begin)) {
    owner = owner.attr(path.substr(begin, dot - begin)).toModule();
    begin = dot + 1;
  }
  return {owner, path.substr(begin)};
}

}  // namespace

const char* ProjectionModeName(ProjectionMode mode) {
  switch (mode) {
    case ProjectionMode::kPerTensor: return "per_tensor";
    case ProjectionMode::kGlobal: return "global";
    case ProjectionMode::kReference: return "reference";
    case ProjectionMode::kSizeWeighted: return "size_weighted";
  }
  return "?";
}

StatusOr<ProjectionMode> ProjectionModeNamed(const std::string& name) {
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal, ProjectionMode::kReference,
                    ProjectionMode::kSizeWeighted}) {
    if (name == ProjectionModeName(mode)) return mode;
  }
  return InvalidArgumentError("projection mode '" + name +
                              "'; expected per_tensor, global, reference or size_weighted");
}

bool NameHasPrefix(const std::string& name, const std::string& prefix) {
  if (name.size() < prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || name[prefix.size()] == '.';
}

StatusOr<SubspaceModel> SubspaceModel::Create(const torch::jit::Module& module, const SubspaceOptions& options) {
  const int64_t groups = static_cast<int64_t>(options.layer_groups_.size());
  if (options.d_ < 1) {
    return InvalidArgumentError("subspace dimension d must be >= 1, got " + std::to_string(options.d_));
  }
  if (options.d_ <= groups) {
    return InvalidArgumentError("subspace dimension d = " + std::to_string(options.d_) + " must exceed the number of " +
                                "layer groups (" + std::to_string(groups) + "): each group takes one of the d " +
                                "trainable numbers as its scale lambda, and theta_d needs at least one");
  }
  for (int64_t g = 0; g < groups; ++g) {
    if (options.layer_groups_[g].empty()) {
      return InvalidArgumentError("layer group " + std::to_string(g) + " is empty; expected at least one name prefix");
    }
  }

  // Copied without autograd: the copies are leaves, not clones tied to the caller's parameters (through
  // which unwarped parameters would still receive gradients).
  torch::jit::Module copy;
  {
    at::NoGradGuard no_grad;
    copy = module.deepcopy();
  }
  SubspaceModel model(std::move(copy), options);
  model.module_.eval();

  std::vector<std::string> all_names;
  std::vector<at::Tensor> all_values;
  for (const auto& p : model.module_.named_parameters(/*recurse=*/true)) {
    all_names.push_back(p.name);
    all_values.push_back(p.value);
  }
  for (const auto& prefix : options.warp_prefixes_) {
    bool found = false;
    for (const auto& n : all_names) found = found || NameHasPrefix(n, prefix);
    if (!found) {
      return InvalidArgumentError("warp prefix '" + prefix + "' matches no parameter; parameters are " +
                                  ListNames(all_names));
    }
  }

  for (size_t i = 0; i < all_names.size(); ++i) {
    const std::string& name = all_names[i];
    if (!options.warp_prefixes_.empty() && !MatchesAny(name, options.warp_prefixes_)) continue;
    const at::Tensor& value = all_values[i];
    if (!at::isFloatingType(value.scalar_type())) {
      std::ostringstream os;
      os << "parameter '" << name << "' has dtype " << value.scalar_type()
         << "; only floating-point parameters can be warped (narrow the warp prefixes to exclude it)";
      return InvalidArgumentError(os.str());
    }
    Target target;
    target.name = name;
    std::tie(target.owner, target.attribute) = OwnerOf(model.module_, name);
    target.theta0 = value.detach();
    std::vector<int64_t> member_of;
    for (int64_t g = 0; g < groups; ++g) {
      if (MatchesAny(name, options.layer_groups_[g])) member_of.push_back(g);
    }
    if (member_of.size() > 1) {
      return InvalidArgumentError("parameter '" + name + "' is in layer groups " + std::to_string(member_of[0]) + " (" +
                                  Join(options.layer_groups_[member_of[0]]) + ") and " + std::to_string(member_of[1]) +
                                  " (" + Join(options.layer_groups_[member_of[1]]) + "); each belongs to at most one");
    }
    if (groups > 0 && member_of.empty()) {
      return InvalidArgumentError("warped parameter '" + name + "' belongs to no layer group; with layer groups " +
                                  "every warped parameter must be in exactly one");
    }
    target.group = member_of.empty() ? -1 : member_of[0];
    target.offset = model.warped_count_;
    model.warped_count_ += value.numel();
    model.targets_.push_back(std::move(target));
  }
  if (model.targets_.empty()) return InvalidArgumentError("the module has no parameters to warp");

  const at::Tensor& first = model.targets_.front().theta0;
  for (const auto& t : model.targets_) {
    if (t.theta0.scalar_type() != first.scalar_type() || t.theta0.device() != first.device()) {
      std::ostringstream os;
      os << "warped parameters must share one dtype and device: '" << model.targets_.front().name << "' is "
         << first.scalar_type() << " on " << first.device() << ", '" << t.name << "' is " << t.theta0.scalar_type()
         << " on " << t.theta0.device();
      return InvalidArgumentError(os.str());
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    for (const auto& prefix : options.layer_groups_[g]) {
      bool found = false;
      for (const auto& t : model.targets_) found = found || NameHasPrefix(t.name, prefix);
      if (!found) {
        return InvalidArgumentError("layer group " + std::to_string(g) + " prefix '" + prefix +
                                    "' matches no warped parameter");
      }
    }
  }

  // Only theta_d and the lambdas train; the module's own tensors become constants.
  for (auto& value : all_values) value.set_requires_grad(false);

  const int64_t theta_size = options.d_ - groups;
  const ProjectionMode mode = options.projection_;
  if (mode == ProjectionMode::kGlobal) {
    auto projection =
        FastfoodProjection::Create(model.warped_count_, theta_size, options.seed_, "<global>", first.device());
    if (!projection.ok()) return projection.status();
    model.projections_.push_back(std::move(projection).value());
  } else {
    for (const auto& t : model.targets_) {
      const int64_t size = t.theta0.numel();
      // kReference reads only theta_d's first L_t entries, L_t = 2^ceil(log2 D_t).
      const int64_t inputs = mode == ProjectionMode::kReference ? std::min(theta_size, NextPowerOfTwo(size)) : theta_size;
      auto projection = FastfoodProjection::Create(size, inputs, options.seed_, t.name, first.device());
      if (!projection.ok()) return projection.status();
      const double factor = mode == ProjectionMode::kSizeWeighted
                                ? std::sqrt(static_cast<double>(size) / static_cast<double>(model.warped_count_))
                                : 1.0;
      model.projections_.push_back(factor == 1.0 ? std::move(projection).value() : projection->Scaled(factor));
    }
  }
  bool use_batched = false;
  if (options.batched_.has_value()) {
    use_batched = *options.batched_;
  } else {
    auto by_default = BatchedByDefault(first.device());
    if (!by_default.ok()) return by_default.status();
    use_batched = *by_default;
  }
  if (mode != ProjectionMode::kGlobal && use_batched) {
    auto batched = BatchedFastfood::Create(model.projections_, theta_size);
    if (!batched.ok()) return batched.status();
    model.batched_ = std::move(batched).value();
  }
  bool fused = false;
  if (options.fused_install_.has_value()) {
    fused = *options.fused_install_;
  } else {
    auto by_default = FusedInstallByDefault(first.device());
    if (!by_default.ok()) return by_default.status();
    fused = *by_default && (mode == ProjectionMode::kGlobal || model.batched_.has_value());
  }
  if (fused && mode != ProjectionMode::kGlobal && !model.batched_.has_value()) {
    return InvalidArgumentError(std::string("the fused install needs the batched projection in mode ") +
                                ProjectionModeName(mode) + ", which is off; turn batched on or fused_install off");
  }
  if (fused) {
    // theta_0 moves into one flat buffer; each target keeps a view of its part (no second copy).
    std::vector<at::Tensor> flat_parts;
    std::vector<internal::FusedInstall::Target> fused_targets;
    for (const auto& t : model.targets_) {
      flat_parts.push_back(t.theta0.reshape({-1}));
      fused_targets.push_back({t.offset, t.theta0.sizes().vec(), t.group});
    }
    const at::Tensor theta0 = at::cat(flat_parts);
    for (size_t i = 0; i < model.targets_.size(); ++i) {
      Target& t = model.targets_[i];
      t.theta0 = theta0.narrow(0, t.offset, t.theta0.numel()).view(fused_targets[i].shape);
    }
    std::optional<FastfoodProjection> global;
    if (mode == ProjectionMode::kGlobal) global = model.projections_.front();
    model.fused_ = std::make_shared<const internal::FusedInstall>(
        theta0, std::move(fused_targets), groups, model.batched_, std::move(global),
        internal::FusedInstall::DefaultOps(first.device()));
  }
  const auto options_of = at::TensorOptions().dtype(first.scalar_type()).device(first.device());
  model.theta_d_ = at::zeros({theta_size}, options_of).set_requires_grad(true);
  if (groups > 0) model.lambdas_ = at::ones({groups}, options_of).set_requires_grad(true);
  return model;
}

std::vector<at::Tensor> SubspaceModel::Deltas() const {
  std::vector<at::Tensor> deltas;
  if (options_.projection_ == ProjectionMode::kGlobal) {
    const at::Tensor flat = projections_.front().Apply(theta_d_);
    for (const auto& t : targets_) deltas.push_back(flat.narrow(0, t.offset, t.theta0.numel()));
  } else if (batched_.has_value()) {
    deltas = batched_->Apply(theta_d_);
  } else {
    for (const auto& p : projections_) {
      // kReference's truncated projections read a prefix of theta_d (a view: gradients flow to it).
      deltas.push_back(p.Apply(p.subspace_dim() == theta_d_.size(0) ? theta_d_ : theta_d_.narrow(0, 0, p.subspace_dim())));
    }
  }
  // One unbind for all groups rather than a select per tensor: a single node in the backward graph.
  const std::vector<at::Tensor> lambda_of_group = lambdas_.defined() ? lambdas_.unbind(0) : std::vector<at::Tensor>{};
  for (size_t i = 0; i < targets_.size(); ++i) {
    const Target& t = targets_[i];
    deltas[i] = deltas[i].view(t.theta0.sizes());
    if (t.group >= 0) deltas[i] = lambda_of_group[static_cast<size_t>(t.group)] * deltas[i];
  }
  return deltas;
}

void SubspaceModel::Install(bool record_grad) {
  at::AutoGradMode grad_mode(record_grad);
  if (fused_ != nullptr) {
    // Without groups an empty stand-in: the autograd function's inputs must be defined tensors.
    const at::Tensor lambdas = lambdas_.defined() ? lambdas_ : at::empty({0}, theta_d_.options().requires_grad(false));
    const std::vector<at::Tensor> parts = internal::ApplyFusedInstall(fused_, theta_d_, lambdas);
    for (size_t i = 0; i < targets_.size(); ++i) targets_[i].owner.setattr(targets_[i].attribute, parts[i]);
    return;
  }
  const std::vector<at::Tensor> deltas = Deltas();
  for (size_t i = 0; i < targets_.size(); ++i) {
    Target& t = targets_[i];
    t.owner.setattr(t.attribute, t.theta0 + deltas[i]);
  }
}

at::Tensor SubspaceModel::WarpDelta() const {
  at::NoGradGuard no_grad;
  if (fused_ != nullptr) return fused_->Delta(theta_d_, lambdas_);
  std::vector<at::Tensor> parts;
  for (const auto& delta : Deltas()) parts.push_back(delta.reshape({-1}));
  return at::cat(parts);
}

void SubspaceModel::Materialize() {
  if (training_ && at::GradMode::is_enabled()) {
    Install(/*record_grad=*/true);
    cached_theta_version_ = -1;
    return;
  }
  const int64_t theta_version = static_cast<int64_t>(theta_d_._version());
  const int64_t lambda_version = lambdas_.defined() ? static_cast<int64_t>(lambdas_._version()) : 0;
  if (theta_version == cached_theta_version_ && lambda_version == cached_lambda_version_) return;
  Install(/*record_grad=*/false);
  cached_theta_version_ = theta_version;
  cached_lambda_version_ = lambda_version;
}

at::Tensor SubspaceModel::Forward(const at::Tensor& input) { return Forward(std::vector<c10::IValue>{input}).toTensor(); }

c10::IValue SubspaceModel::Forward(std::vector<c10::IValue> inputs) {
  Materialize();
  return module_.forward(std::move(inputs));
}

std::vector<at::Tensor> SubspaceModel::parameters() const {
  std::vector<at::Tensor> out{theta_d_};
  if (lambdas_.defined()) out.push_back(lambdas_);
  return out;
}

std::vector<std::string> SubspaceModel::warped_parameter_names() const {
  std::vector<std::string> names;
  for (const auto& t : targets_) names.push_back(t.name);
  return names;
}

}  // namespace dwarp::engine
