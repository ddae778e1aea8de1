// Writing result files so that a reader never sees half of one: the text goes to a temporary file next
// to the target, which is then renamed over it (atomic on one filesystem). Standard library only.
// Thread-safety: free function; concurrent writers of one path each leave a whole file (the last wins).
#pragma once

#include <string>

#include "common/status.h"

namespace dwarp {

// Creates missing parent folders. Unavailable naming `what` (the option that named the path, e.g. "--out")
// and the path when a folder cannot be created or the file cannot be written or renamed; nothing is left
// behind on failure.
Status WriteFileAtomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace dwarp
