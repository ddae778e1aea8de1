#include "worker/engine/models/torchscript_readout.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "worker/engine/models/model_errors.h"

namespace dwarp::engine {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

std::string Join(const std::string& path, const std::string& name) { return path.empty() ? name : path + "." + name; }

// `path` is a strict ancestor of `layer` ("" is the root's path and an ancestor of every layer).
bool IsStrictAncestor(const std::string& path, const std::string& layer) {
  return path.empty() || (layer.size() > path.size() && layer.compare(0, path.size(), path) == 0 &&
                          layer[path.size()] == '.');
}

// Calls fn on every node of the block and its sub-blocks, in program order.
void ForEachNode(Block* block, const std::function<void(Node*)>& fn) {
  for (Node* node : block->nodes()) {
    fn(node);
    for (Block* sub : node->blocks()) ForEachNode(sub, fn);
  }
}

// The attribute path of every value reached from `self` through prim::GetAttr ("" for self itself).
std::unordered_map<const Value*, std::string> AttributePaths(Graph& graph) {
  std::unordered_map<const Value*, std::string> paths{{graph.inputs()[0], ""}};
  ForEachNode(graph.block(), [&](Node* node) {
    if (node->kind() != c10::prim::GetAttr) return;
    const auto it = paths.find(node->input(0));
    if (it != paths.end()) paths[node->output()] = Join(it->second, node->s(c10::attr::name));
  });
  return paths;
}

// The graph function a prim::CallMethod node calls, or nullptr (an interface call, a builtin method).
torch::jit::GraphFunction* Callee(Node* call) {
  auto cls = call->input(0)->type()->cast<c10::ClassType>();
  if (!cls) return nullptr;
  torch::jit::Function* fn = cls->findMethod(call->s(c10::attr::name));
  return fn ? torch::jit::tryToGraphFunction(*fn) : nullptr;
}

// Replaces reads of the modules' bool attributes (other than `training`) by their current values and
// folds the `if`s they decide, so a layer called in both branches of such an `if` (torchvision's
// MobileNetV2 and EfficientNet blocks branch on self.use_res_connect) is called once. Attributes the
// graph writes are left alone. Returns whether anything was folded.
bool FoldBoolAttributes(const torch::jit::Module& module, std::shared_ptr<Graph>& graph) {
  std::set<std::string> written;
  ForEachNode(graph->block(), [&](Node* node) {
    if (node->kind() == c10::prim::SetAttr) written.insert(node->s(c10::attr::name));
  });
  const auto paths = AttributePaths(*graph);
  std::vector<std::pair<Node*, bool>> reads;
  ForEachNode(graph->block(), [&](Node* node) {
    if (node->kind() != c10::prim::GetAttr || !node->output()->type()->isSubtypeOf(*c10::BoolType::get())) return;
    const std::string name = node->s(c10::attr::name);
    const auto owner = paths.find(node->input(0));
    if (owner == paths.end() || name == "training" || written.count(name)) return;
    torch::jit::Module m = module;
    std::stringstream components(owner->second);
    for (std::string component; std::getline(components, component, '.');) m = m.attr(component).toModule();
    reads.emplace_back(node, m.attr(name).toBool());
  });
  for (auto& [node, value] : reads) {
    torch::jit::WithInsertPoint guard(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(value));
    node->destroy();
  }
  if (!reads.empty()) torch::jit::ConstantPropagation(graph);
  return !reads.empty();
}

}  // namespace

std::vector<std::string> SubmoduleNames(const torch::jit::Module& module) {
  std::vector<std::string> names;
  for (const auto& m : module.named_modules()) {
    if (!m.name.empty()) names.push_back(m.name);
  }
  return names;
}

Status CutForwardAtLayer(torch::jit::Module& module, const std::string& layer) {
  const std::vector<std::string> valid = SubmoduleNames(module);
  if (std::find(valid.begin(), valid.end(), layer) == valid.end()) {
    return models_internal::UnknownLayerError("this TorchScript model", layer, valid);
  }
  torch::jit::Function* forward = module.type()->findMethod("forward");
  torch::jit::GraphFunction* forward_graph = forward ? torch::jit::tryToGraphFunction(*forward) : nullptr;
  if (forward_graph == nullptr) return InvalidArgumentError("the TorchScript model has no forward method to read out");
  std::shared_ptr<Graph> graph = forward_graph->graph()->copy();

  // 1. Inline calls on ancestors of the layer until only calls on the layer (and elsewhere) remain.
  std::vector<Node*> calls;
  while (true) {
    const auto paths = AttributePaths(*graph);
    Node* ancestor_call = nullptr;
    calls.clear();
    ForEachNode(graph->block(), [&](Node* node) {
      if (ancestor_call != nullptr || node->kind() != c10::prim::CallMethod) return;
      const auto it = paths.find(node->input(0));
      if (it == paths.end()) return;
      if (it->second == layer) {
        calls.push_back(node);
      } else if (IsStrictAncestor(it->second, layer) && Callee(node) != nullptr) {
        ancestor_call = node;
      }
    });
    if (ancestor_call == nullptr) {
      if (calls.size() > 1 && FoldBoolAttributes(module, graph)) continue;
      break;
    }
    torch::jit::GraphFunction* callee = Callee(ancestor_call);
    torch::jit::inlineCallTo(ancestor_call, callee, callee->graph().get());
  }

  // 2. Exactly one call, at the top level, returning a Tensor.
  if (calls.size() != 1) {
    return InvalidArgumentError("read-out layer '" + layer + "' is called " + std::to_string(calls.size()) +
                                " times by the model's forward; expected exactly once (a module that forward "
                                "never calls, or calls repeatedly, has no single output to read out)");
  }
  Node* call = calls.front();
  if (call->owningBlock() != graph->block()) {
    return InvalidArgumentError("read-out layer '" + layer +
                                "' is called inside an if or a loop of the model's forward; expected a call at "
                                "the top level, whose output every input reaches");
  }
  if (call->outputs().size() != 1 || !call->output()->type()->isSubtypeOf(*c10::TensorType::get())) {
    return InvalidArgumentError("read-out layer '" + layer + "' returns " +
                                (call->outputs().size() == 1 ? call->output()->type()->repr_str()
                                                             : std::to_string(call->outputs().size()) + " values") +
                                "; expected a Tensor");
  }

  // 3. Return flatten(output, 1); delete everything after it.
  Value* flat = nullptr;
  {
    torch::jit::WithInsertPoint guard(call->next());
    flat = graph->insert(c10::aten::flatten, {call->output(), 1, -1});
  }
  while (!graph->outputs().empty()) graph->eraseOutput(graph->outputs().size() - 1);
  graph->registerOutput(flat);
  Node* return_node = graph->block()->return_node();
  for (Node* node = return_node->prev(); node != flat->node();) {
    Node* prev = node->prev();
    node->destroy();
    node = prev;
  }
  // Submodule calls whose results nothing uses (a branch the layer does not depend on, e.g. a residual
  // block's main path when reading its downsample) count as side effects for EliminateDeadCode; a read-out
  // runs in eval mode, where torch.nn modules have none, so they are removed too.
  for (bool removed = true; removed;) {
    torch::jit::EliminateDeadCode(graph);
    removed = false;
    std::vector<Node*> unused;
    ForEachNode(graph->block(), [&](Node* node) {
      if (node->kind() != c10::prim::CallMethod) return;
      for (Value* output : node->outputs()) {
        if (output->hasUses()) return;
      }
      unused.push_back(node);
    });
    for (auto it = unused.rbegin(); it != unused.rend(); ++it) (*it)->destroy();
    removed = !unused.empty();
  }

  // 4. The cut graph becomes forward.
  const c10::QualifiedName name = forward->qualname();
  std::shared_ptr<torch::jit::CompilationUnit> unit = module._ivalue()->compilation_unit();
  module.type()->unsafeRemoveMethod("forward");
  unit->unsafeRemoveMethod(name);  // destroys `forward`; the graph above is a copy
  module.type()->addMethod(unit->create_function(name, graph));
  return OkStatus();
}

std::vector<std::string> ParametersReadByForward(const torch::jit::Module& module) {
  std::set<std::string> read;
  if (torch::jit::Function* forward = module.type()->findMethod("forward")) {
    if (torch::jit::GraphFunction* fn = torch::jit::tryToGraphFunction(*forward)) {
      std::shared_ptr<Graph> graph = fn->graph()->copy();
      torch::jit::Inline(*graph);
      for (const auto& entry : AttributePaths(*graph)) read.insert(entry.second);
    }
  }
  std::vector<std::string> prefixes;
  // Depth first: a module all of whose (>= 1) parameters are read is one prefix; otherwise its own read
  // parameters are listed one by one and its children are visited.
  std::function<void(const torch::jit::Module&, const std::string&)> visit = [&](const torch::jit::Module& m,
                                                                                 const std::string& path) {
    size_t total = 0, used = 0;
    for (const auto& p : m.named_parameters(/*recurse=*/true)) {
      ++total;
      used += read.count(Join(path, p.name));
    }
    if (used == 0) return;
    if (used == total && !path.empty()) {
      prefixes.push_back(path);
      return;
    }
    for (const auto& p : m.named_parameters(/*recurse=*/false)) {
      if (read.count(Join(path, p.name))) prefixes.push_back(Join(path, p.name));
    }
    for (const auto& child : m.named_children()) visit(child.value, Join(path, child.name));
  };
  visit(module, "");
  return prefixes;
}

}  // namespace dwarp::engine
