// Ids the coordinator hands out that must not be guessable: lease ids and worker ids.
// Thread-safety: may be called from any thread.
#pragma once

#include <string>

namespace dwarp::coordinator {

// `prefix` followed by 32 hex digits (128 bits) from the kernel's cryptographic generator. A lease id is a
// capability (whoever knows it may report that job's outcome), so it must not be predictable from ids seen
// before, as a seeded mt19937_64's output is; 128 bits also mean a restarted coordinator never reissues an
// id. Aborts when the machine has no cryptographic random source at all (no id would be safe).
std::string NewRandomId(const char* prefix);

}  // namespace dwarp::coordinator
