// Sample conversion and the streaming resampler (see audio.hpp for why the bridge resamples).
#include "audio.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace npc::detail {

namespace {
constexpr int kHalfTaps = 16;        // half-width in samples of the lower of the two rates
constexpr double kCutoff = 0.94;     // fraction of the lower Nyquist kept (rest: transition)
constexpr double kKaiserBeta = 8.0;  // ~80 dB stop band
constexpr uint64_t kMaxTablePhases = 4096;

double BesselI0(double x) {          // series; converges fast for the beta used here
  double sum = 1.0, term = 1.0;
  for (int k = 1; k < 50; ++k) {
    term *= (x / (2.0 * k)) * (x / (2.0 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

double Kaiser(double x) {            // x in [-1, 1]
  if (std::fabs(x) >= 1.0) return 0.0;
  return BesselI0(kKaiserBeta * std::sqrt(1.0 - x * x)) / BesselI0(kKaiserBeta);
}

double Sinc(double x) {
  if (std::fabs(x) < 1e-12) return 1.0;
  return std::sin(M_PI * x) / (M_PI * x);
}
}  // namespace

int16_t FloatToPcm16(float x) {
  if (!(x == x)) return 0;  // NaN from a broken source must not become a full-scale click
  const float scaled = std::round(x * 32767.0f);
  return static_cast<int16_t>(std::clamp(scaled, -32768.0f, 32767.0f));
}

Resampler::Resampler(uint32_t rate_in, uint32_t rate_out)
    : rate_in_(rate_in), rate_out_(rate_out), identity_(rate_in == rate_out) {
  const double ratio = std::min(1.0, static_cast<double>(rate_out) / rate_in);
  fc_ = kCutoff * ratio;
  half_ = static_cast<int>(std::ceil(kHalfTaps / ratio));
  phases_ = rate_out / std::gcd(rate_in, rate_out);
  // Tabulating the filter turns resampling into a gather and a dot product; every common pair
  // of rates has at most a few hundred phases (22050 -> 16000: 320).
  if (!identity_ && phases_ <= kMaxTablePhases) {
    table_.resize(phases_ * 2 * half_);
    for (uint64_t p = 0; p < phases_; ++p)
      Weights(static_cast<double>(p) / phases_, &table_[p * 2 * half_]);
  }
}

void Resampler::Weights(double frac, float* w) const {
  double sum = 0.0;
  std::vector<double> tmp(2 * half_);
  for (int t = -half_ + 1; t <= half_; ++t) {
    const double dist = t - frac;
    tmp[t + half_ - 1] = fc_ * Sinc(fc_ * dist) * Kaiser(dist / half_);
    sum += tmp[t + half_ - 1];
  }
  for (int i = 0; i < 2 * half_; ++i) w[i] = static_cast<float>(tmp[i] / sum);
}

void Resampler::Produce(uint64_t n_end, std::vector<float>* out) {
  std::vector<float> scratch(table_.empty() ? 2 * half_ : 0);
  for (uint64_t n = n_out_; n < n_end; ++n) {
    const uint64_t num = n * rate_in_;
    const int64_t i0 = static_cast<int64_t>(num / rate_out_);
    const uint64_t rem = num % rate_out_;
    const float* w;
    if (!table_.empty()) {
      w = &table_[(rem * phases_ / rate_out_) * 2 * half_];
    } else {
      Weights(static_cast<double>(rem) / rate_out_, scratch.data());
      w = scratch.data();
    }
    double acc = 0.0;
    for (int t = -half_ + 1; t <= half_; ++t) {
      const int64_t idx = i0 + t - static_cast<int64_t>(buf_start_);
      if (idx >= 0 && idx < static_cast<int64_t>(buf_.size())) acc += w[t + half_ - 1] * buf_[idx];
    }
    out->push_back(static_cast<float>(acc));
  }
  n_out_ = std::max(n_out_, n_end);
}

void Resampler::Push(const float* x, size_t n, std::vector<float>* out) {
  n_in_ += n;
  if (identity_) {
    out->insert(out->end(), x, x + n);
    n_out_ += n;
    return;
  }
  buf_.insert(buf_.end(), x, x + n);
  // Output m needs input up to floor(m * rate_in / rate_out) + half.
  const int64_t last_in = static_cast<int64_t>(n_in_) - 1 - half_;
  const uint64_t n_end =
      last_in < 0 ? 0 : static_cast<uint64_t>(last_in) * rate_out_ / rate_in_ + 1;
  if (n_end > n_out_) Produce(n_end, out);
  const int64_t keep_from = static_cast<int64_t>(n_out_ * rate_in_ / rate_out_) - half_;
  if (keep_from > static_cast<int64_t>(buf_start_)) {  // drop input no future output needs
    const size_t drop = std::min<size_t>(buf_.size(), keep_from - buf_start_);
    buf_.erase(buf_.begin(), buf_.begin() + drop);
    buf_start_ += drop;
  }
}

void Resampler::Flush(std::vector<float>* out) {
  if (identity_) return;
  const uint64_t n_end = (n_in_ * rate_out_ + rate_in_ - 1) / rate_in_;  // ceil
  if (n_end > n_out_) Produce(n_end, out);
}

}  // namespace npc::detail
