// Writes one event file with known contents for tests/clients/tfevents_crosscheck.sh, which decodes it
// with the real protobuf library. Usage: tfevents_fixture FOLDER; prints the file's path.
#include <cstdint>
#include <iostream>

#include "clients/sweep/tfevents.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tfevents_fixture FOLDER\n";
    return 2;
  }
  auto writer = dwarp::clients::EventFileWriter::Open(argv[1], 1700000000.5);
  if (!writer.ok()) {
    std::cerr << "error: " << writer.status() << "\n";
    return 1;
  }
  // The script expects exactly these (tag, value, step, wall time); keep the two in step.
  struct Scalar {
    const char* tag;
    double value;
    int64_t step;
    double wall_time;
  };
  const Scalar scalars[] = {{"train/loss", 0.25, 1, 1700000001.0},
                            {"val/r2", -0.5, 2, 1700000002.25},
                            {"test/accuracy", 0.875, 3, 1700000003.0},
                            {"big/step", 1.5, int64_t{1} << 40, 1700000004.0},
                            {"negative/step", 2.0, -3, 1700000005.0}};
  for (const Scalar& s : scalars) {
    dwarp::Status added = writer->AddScalar(s.tag, s.value, s.step, s.wall_time);
    if (!added.ok()) {
      std::cerr << "error: " << added << "\n";
      return 1;
    }
  }
  dwarp::Status closed = writer->Close();
  if (!closed.ok()) {
    std::cerr << "error: " << closed << "\n";
    return 1;
  }
  std::cout << writer->path() << "\n";
  return 0;
}
