#include "worker/engine/datasets/csv_table.h"

#include <algorithm>
#include <cstring>

#include "common/file_io.h"
#include "common/quote.h"

namespace dwarp::engine {
bool CsvTable::HasColumn(const std::string& name) const {
  for (const auto& h : header_) {
    if (h == name) return true;
  }
  return false;
}

StatusOr<std::vector<std::string>> CsvTable::Column(const std::string& name) const {
  for (size_t c = 0; c < header_.size(); ++c) {
    if (header_[c] != name) continue;
    std::vector<std::string> out;
    out.reserve(rows_.size());
    for (const auto& row : rows_) out.push_back(row[c]);
    return out;
  }
  // The header is whatever the file's first line holds (a job may name any file): at most 12 names of at
  // most 32 printable ASCII characters are shown, anything else is replaced, never quoted.
  constexpr size_t kShownColumns = 12, kShownChars = 32;
  std::string have;
  for (size_t c = 0; c < header_.size() && c < kShownColumns; ++c) {
    const std::string& h = header_[c];
    const bool printable = h.size() <= kShownChars && std::all_of(h.begin(), h.end(), [](char ch) {
                             return ch >= 0x20 && ch < 0x7f;
                           });
    have += (have.empty() ? "" : ", ") + (printable ? Quote(h) : std::string("(a name not shown: not short printable text)"));
  }
  if (header_.size() > kShownColumns) have += " and " + std::to_string(header_.size() - kShownColumns) + " more";
  return InvalidArgumentError("CSV file " + Quote(path_) + " has no column " + Quote(name) + "; its " +
                              std::to_string(header_.size()) + " columns are " + have);
}

StatusOr<CsvTable> ReadCsvFile(const std::string& path) {
  auto read = ReadWholeFile(path, "CSV file");
  if (!read.ok()) return read.status();
  const std::string& text = *read;
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;

  std::vector<std::vector<std::string>> records;
  std::vector<size_t> record_lines;
  size_t line = 1;
  while (i < text.size()) {
    std::vector<std::string> fields;
    std::string field;
    const size_t start_line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      if (i < text.size() && text[i] == '"') {
        ++i;
        for (;;) {
          if (i >= text.size()) {
            return InvalidArgumentError("CSV file " + Quote(path) + " line " + std::to_string(start_line) +
                                        ": a quoted field is never closed");
          }
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
      }
      while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') field += text[i++];
      fields.push_back(std::move(field));
      field.clear();
      if (i >= text.size()) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
      } else {
        if (text[i] == '\r') ++i;
        if (i < text.size() && text[i] == '\n') ++i;
        ++line;
        end_of_record = true;
      }
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    records.push_back(std::move(fields));
    record_lines.push_back(start_line);
  }
  if (records.empty()) return InvalidArgumentError("CSV file " + Quote(path) + " is empty; expected a header row");
  std::vector<std::string> header = std::move(records[0]);
  std::vector<std::vector<std::string>> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != header.size()) {
      return InvalidArgumentError("CSV file " + Quote(path) + " line " + std::to_string(record_lines[r]) + " has " +
                                  std::to_string(records[r].size()) + " fields; expected " +
                                  std::to_string(header.size()) + " as in the header");
    }
    rows.push_back(std::move(records[r]));
  }
  return CsvTable(path, std::move(header), std::move(rows));
}

StatusOr<bool> ParseCsvBool(const std::string& value, const std::string& what) {
  if (value == "True" || value == "true" || value == "TRUE" || value == "1") return true;
  if (value == "False" || value == "false" || value == "FALSE" || value == "0") return false;
  return InvalidArgumentError(what + " is " + Quote(value) + "; expected True or False");
}

}  // namespace dwarp::engine
