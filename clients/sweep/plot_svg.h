// The d_warp picture of a sweep as SVG text, from the coordinator's d_warp records. Our own small writer:
// no plotting library, no external resources, valid SVG 1.1.
//
// What it draws: test score (y) against the subspace dimension d (x, log axis), one line per group of
// records (model/layer, plus /dataset when the response holds more than one dataset, plus [variant] when
// set) from DWarpRecord.curve: mean_score at each numeric d, std_score as a vertical error bar where
// std > 0 and seeds_done > 1; points with seeds_done == 0 are skipped. d = 0 has no logarithm and sits at
// its own position left of the smallest positive d, behind an axis break, ticked "0"; d = "full" sits at
// its own position right of the largest d, ticked "full", and is a marker only (not joined to the line).
// Each dataset's threshold (record.threshold; NaN is skipped) is a horizontal dashed line labelled
// "threshold 0.xxx". A reached d_warp is a filled marker at (d_warp, threshold) with a dashed vertical
// drop line, a provisional one a hollow marker; pending and not-reached groups get no marker. The legend
// gives each group's d_warp ("d_warp 46.4", "~46.4 (provisional)", "not reached", "pending").
//
// Deterministic: the same response gives the same text (fixed number formatting), so tests compare
// substrings. Every label is XML-escaped.
//
// Thread-safety: a pure function of its arguments.
#pragma once

#include <string>

#include "dwarp/v1/dwarp.pb.h"

namespace dwarp::clients {

struct PlotOptions {
  std::string title;  // empty: "d_warp — <sweep id>"
  int width = 900;    // pixels of the whole picture
  int height = 560;
};

// SVG text of the sweep's d_warp records (v1::DWarpResponse from SweepService.DWarp).
std::string RenderDWarpSvg(const v1::DWarpResponse& dwarp, const PlotOptions& options = {});

}  // namespace dwarp::clients
