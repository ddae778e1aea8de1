// The one conversion between a job's result (common/job_result.h JobResult) and its wire form
// dwarp.v1.JobResult: the worker daemon sends a result in Complete with JobResultToProto, the coordinator
// reads it with JobResultFromProto and answers stored results (Job.result) with JobResultToProto again.
//
// noise_ceiling: a finite ceiling is sent; NaN (unknown) leaves the optional field absent, and an absent
// or non-finite field reads back as NaN, so a worker that never sets it reads as "unknown", not as 0.
// Thread-safety: free functions.
#pragma once

#include "common/job_result.h"
#include "dwarp/v1/dwarp.pb.h"

namespace dwarp::rpc {

v1::JobResult JobResultToProto(const JobResult& result);
JobResult JobResultFromProto(const v1::JobResult& message);

}  // namespace dwarp::rpc
