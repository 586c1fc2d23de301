// Audio for the bridge: sample conversion, streaming resampling to the wire rate, and the
// per-channel placement of pushed audio on the performer timeline.
//
// Why the bridge resamples (the server would accept any rate): the server fixes a channel's rate
// with its first chunk and refuses a different one later, but an engine's dialogue clips come at
// 22.05/44.1/48 kHz mixed, and a silent keep-alive must be sendable before any audio exists. One
// wire rate (the model's, 16 kHz) makes every case legal and cuts bandwidth by up to 3x.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace npc::detail {

// float [-1, 1] -> PCM16 with clipping and rounding.
int16_t FloatToPcm16(float x);

// Windowed-sinc (Kaiser) streaming resampler, rate_in -> rate_out. Output n sits at input
// position n * rate_in / rate_out computed in integers, so nothing drifts over hours of audio.
class Resampler {
 public:
  Resampler(uint32_t rate_in, uint32_t rate_out);

  // Adds input; appends every output whose filter support is now complete.
  void Push(const float* x, size_t n, std::vector<float>* out);
  // Appends the remaining outputs up to the end of the input (the future taken as silence).
  void Flush(std::vector<float>* out);

  uint32_t rate_in() const { return rate_in_; }
  uint64_t inputs() const { return n_in_; }

 private:
  void Produce(uint64_t n_end, std::vector<float>* out);
  void Weights(double frac, float* w) const;  // 2*half_ taps for one phase, unit DC gain

  uint32_t rate_in_, rate_out_;
  bool identity_;
  int half_;                 // filter half-width in input samples
  double fc_;                // cutoff relative to the input Nyquist
  uint64_t phases_ = 0;      // rate_out / gcd: output phases repeat with this period
  std::vector<float> table_; // phases_ x 2*half_ weights, when phases_ is small (common rates)
  std::vector<float> buf_;   // input samples from index buf_start_
  uint64_t buf_start_ = 0;
  uint64_t n_in_ = 0, n_out_ = 0;
};

}  // namespace npc::detail
