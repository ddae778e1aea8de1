// The two text rules every SVG dwarp writes follows (clients/sweep/plot_svg.cpp, clients/local/simulate_command.cpp):
// XML-escaped labels, and coordinates with two fixed decimals so the same input gives the same file.
#pragma once

#include <cstdio>
#include <string>

namespace dwarp::clients {

// `text` with & < > " ' escaped for XML text and attribute values.
inline std::string EscapeXml(const std::string& text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': escaped += "&amp;"; break;
      case '<': escaped += "&lt;"; break;
      case '>': escaped += "&gt;"; break;
      case '"': escaped += "&quot;"; break;
      case '\'': escaped += "&apos;"; break;
      default: escaped += c;
    }
  }
  return escaped;
}

// A coordinate with two decimals; "-0.00" is written "0.00".
inline std::string Px(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.2f", value);
  return std::string(buffer) == "-0.00" ? "0.00" : std::string(buffer);
}

}  // namespace dwarp::clients
