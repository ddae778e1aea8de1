// Quote: how error messages show a value they name (a path, a name, a coordinate): between single quotes,
// so that an empty value or one with spaces stays visible ('data/x nc', ''). Standard library only.
#pragma once

#include <string>

namespace dwarp {

inline std::string Quote(const std::string& s) { return "'" + s + "'"; }

}  // namespace dwarp
