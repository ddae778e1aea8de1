// Whole files in and out, with errors that name the file: reading a file whole (spec files, certificates,
// tokens, images, .npy arrays), and writing result files so that a reader never sees half of one (the text
// goes to a temporary file next to the target, which is then renamed over it: atomic on one filesystem).
// Standard library only, so the engine, the spec library and the gRPC processes all use it.
// Thread-safety: free functions; concurrent writers of one path each leave a whole file (the last wins).
#pragma once

#include <string>

#include "common/status.h"

namespace dwarp {

// Creates missing parent folders. Unavailable naming `what` (the option that named the path, e.g. "--out")
// and the path when a folder cannot be created or the file cannot be written or renamed; nothing is left
// behind on failure.
// The bytes of the file at `path`. `what` names the kind of file in errors ("image file", "job spec
// file"), followed by the quoted path: NotFound when there is no such file, InvalidArgument when the path
// is not a regular file (a folder), Unavailable when it cannot be opened or read (with the system's reason).
StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what);

Status WriteFileAtomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace dwarp
