// Reading out a TorchScript model (a researcher's scripted or traced network) at a named submodule.
//
// Design. A TorchScript module's forward is a graph in which every submodule call is a node
// `prim::CallMethod[name="forward"](<module>, ...)` whose module operand is a chain of
// `prim::GetAttr[name=...]` nodes starting at `self`; this holds for torch.jit.script (torchvision's
// Sequential/ModuleList loops are unrolled at compile time) and for torch.jit.trace alike. So the read-out
// at layer "features.7" is found in the graph, not guessed from the module tree:
//
//   1. copy forward's graph; repeatedly inline every method call on a module whose path is a strict
//      prefix of the layer ("" = self, e.g. ResNet's self._forward_impl; "features" for "features.7"),
//      so the call to the layer itself becomes visible; when the layer is then called in both branches
//      of an `if` on a module's bool attribute (torchvision's MobileNetV2/EfficientNet blocks branch on
//      self.use_res_connect), such attributes (never `training`) are replaced by their values and the
//      `if`s folded;
//   2. the layer must then be called exactly once, in the top-level block (not inside an `if` or loop);
//      its output, a Tensor, flattened to [N, features], becomes the graph's only output;
//   3. every node after that call is deleted, then dead code is eliminated, including submodule calls
//      whose outputs nothing uses (dead-code elimination alone keeps every call, as a possible side
//      effect; in the eval mode of a read-out torch.nn modules have none), so only what the layer
//      depends on is computed, as create_feature_extractor's graph;
//   4. the module's forward method is replaced by that graph (as torch.jit.freeze replaces methods).
//
// The module keeps all its parameters and submodules (names unchanged); only the computation stops at
// the layer. The parameters the cut forward still reads are found by inlining it completely and
// following the GetAttr chains; they give the warp prefixes (e.g. conv1, bn1, layer1, layer2 for a
// torchvision ResNet read out at layer2).
//
// This is exactly what clients/export_torchvision.py writes: torch.jit.script(model) of the torchvision
// model in eval mode, untouched, so the same file can be read out at any of its layers, and any model a
// lab has already scripted or traced works without re-exporting. The read-out equals torchvision's
// create_feature_extractor node for that module (tests/engine/models/torchvision_crosscheck_test.cpp).
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

// Replaces module's forward by "run forward up to the output of submodule `layer`, flattened to
// [N, features]". `layer` is a dotted path of named submodules ("layer2", "features.7"). InvalidArgument
// when the path names no submodule (listing the valid ones), or the layer is not called exactly once at
// the top level of forward, or its output is not a Tensor. The module's type is modified in place: do not
// share the module's class with modules that must keep the original forward (a freshly loaded module
// owns its classes).
Status CutForwardAtLayer(torch::jit::Module& module, const std::string& layer);

// Names of all submodules (dotted paths, depth first, the root excluded): the layers a read-out may name.
std::vector<std::string> SubmoduleNames(const torch::jit::Module& module);

// Parameter-name prefixes covering exactly the parameters forward reads: the shallowest submodules all of
// whose parameters are read, plus single parameter names where a module is only partly read. Empty when
// forward reads no parameter.
std::vector<std::string> ParametersReadByForward(const torch::jit::Module& module);

}  // namespace dwarp::engine
