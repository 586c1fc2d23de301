// Internal objects behind npc::Client / npc::Performer (and so behind the C ABI).
//
// Threads. A client has one watcher thread (channel connectivity -> callback). A performer has a
// supervisor thread that opens the stream, writes every outgoing message and reconnects with
// backoff, plus one reader thread per open stream. Engine calls never touch the network: they
// only update the performer's state under its mutex and wake the supervisor, so a push can never
// stall the game thread on HTTP/2 flow control or a dead server.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "audio.hpp"
#include "npc_bridge.hpp"
#include "npc_runtime/v1/runtime.grpc.pb.h"

namespace npc {

namespace pb = ::npc_runtime::v1;
using SteadyClock = std::chrono::steady_clock;

Status FromGrpc(const grpc::Status& status, const std::string& what);
void CopyString(const std::string& s, char* dst, size_t capacity);

// Cached GetServerInfo: what performers validate against (vocabulary, limits, rates).
struct ServerFacts {
  uint32_t model_sample_rate = 16000;
  int64_t max_audio_gap_us = 60'000'000;
  std::vector<std::string> tags;       // vocabulary, weight order
  std::vector<std::string> presets;    // server-wide preset names
  float max_transition_s = 10.0f;
};

struct ClientCore : std::enable_shared_from_this<ClientCore> {
  explicit ClientCore(ClientOptions options);
  ~ClientCore();
  Status Start();
  void Shutdown();
  bool closed() const { return closed_.load(); }

  // GetServerInfo, cached after the first success (the server's facts do not change while it
  // runs; a restarted server is the same build in practice, and performers re-check on start).
  Status Info(uint32_t timeout_ms, pb::ServerInfo* out);
  std::optional<ServerFacts> Facts();
  void Register(const std::shared_ptr<PerformerCore>& p);

  const ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::NpcRuntime::Stub> stub;

  std::mutex mu;
  std::function<void(npc_connection_state)> on_state;

 private:
  void WatchLoop();
  std::atomic<bool> closed_{false};
  std::thread watcher_;
  std::mutex info_mu_;
  std::optional<pb::ServerInfo> info_;
  std::vector<std::weak_ptr<PerformerCore>> performers_;
};

// One item of the outgoing log, on the performer timeline. The log is the performer's memory of
// what the engine asked for: the current stream sends each item once, and a reopened stream
// re-sends whatever still lies in its future (that is how a line survives a reconnect).
struct OutItem {
  enum Kind { kAudio, kEmotion, kLine } kind;
  uint64_t seq = 0;
  int64_t pts_us = 0;        // audio: first sample; cue: start; line: start
  int64_t end_us = 0;        // audio: after the last sample; cue: start; line: end or INT64_MAX
  npc_channel channel = NPC_CHANNEL_SPEAK;
  std::vector<int16_t> pcm;  // at the wire rate
  pb::Emotion emotion;       // cue
  float transition_s = 0;
  std::string line_id, text;
  bool line_open_end = false;
};

// Per channel: the run of contiguous audio being resampled, and where queued audio ends.
struct ChannelState {
  std::unique_ptr<detail::Resampler> resampler;
  int64_t run_start_us = 0;  // performer pts of the run's first input sample
  uint64_t run_out = 0;      // wire samples emitted for this run
  int64_t input_end_us = 0;  // end of the pushed input (AUTO pts continue from here)
  int64_t wire_end_us = 0;   // end of the emitted wire audio (never overlapped)
  bool has_audio = false;
};

struct QueuedFrame {
  npc_frame_info info{};
  std::vector<uint8_t> payload;
};

struct PerformerCore : std::enable_shared_from_this<PerformerCore> {
  PerformerCore(std::shared_ptr<ClientCore> client, PerformerOptions options);
  ~PerformerCore();
  void Start();
  void Destroy();
  bool closed() const { return closed_.load(); }

  Status Stop(bool immediate);
  Status WaitStreaming(uint32_t timeout_ms);
  void GetStatus(npc_performer_status* out);
  Status PushAudio(npc_channel channel, const float* samples, size_t count, uint32_t rate,
                   int64_t pts_us);
  Status SetEmotion(pb::Emotion emotion, float transition_s, int64_t pts_us);
  Status MarkLine(const std::string& id, int64_t start, int64_t end, const std::string& text);
  int64_t NowUs() const;
  int64_t PlaybackClockUs();
  Status PopFrame(int64_t clock_us, npc_frame_info* info, uint8_t* dst, size_t capacity,
                  std::vector<uint8_t>* vec);
  Status PollEvent(npc_event* out);

 private:
  struct Stream;  // one open Perform call

  void Supervise();
  // Returns the status that ended the stream and whether it ever delivered a frame.
  grpc::Status RunStream(bool reconnect, bool* got_frames);
  void ReadLoop(Stream* s);
  bool NextRequest(Stream* s, pb::PerformRequest* req);  // called with mu_ held
  void ApplyResponse(Stream* s, const pb::PerformResponse& resp);
  void Tick(Stream* s);                                    // called with mu_ held
  void EmitWire(npc_channel ch, ChannelState* cs, const std::vector<float>& wire);
  void FlushRun(npc_channel ch, ChannelState* cs);
  void Prune();
  pb::Emotion EmotionAt(int64_t pts_us) const;
  Status CheckEmotionName(const std::string& name) const;
  void SetState(npc_performer_state state, npc_result error, const std::string& message);
  void PushEvent(const npc_event& ev);
  bool SleepInterruptible(std::chrono::milliseconds d);

  const std::shared_ptr<ClientCore> client_;
  const PerformerOptions options_;
  const SteadyClock::time_point origin_;
  uint32_t wire_rate_ = 16000;

  mutable std::mutex mu_;
  std::condition_variable cv_;             // wakes the supervisor / writer and waiters
  std::atomic<bool> closed_{false};
  bool stop_requested_ = false, stop_immediate_ = false, stop_sent_ = false;
  npc_performer_state state_ = NPC_PERFORMER_CONNECTING;
  npc_result error_ = NPC_OK;
  std::string error_message_;
  std::optional<ServerFacts> facts_;
  std::vector<std::string> npc_presets_;

  std::deque<OutItem> log_;
  uint64_t next_seq_ = 0;
  ChannelState channels_[2];
  int64_t last_cue_pts_ = 0, last_line_start_ = 0;
  std::optional<pb::Emotion> base_emotion_;  // latest cue pruned from the log

  Stream* live_ = nullptr;                 // the open stream (owned by the supervisor)
  pb::PerformanceStarted started_;
  bool have_started_ = false;
  int64_t stream_origin_us_ = 0;           // performer pts of the stream's pts 0

  std::deque<QueuedFrame> frames_;
  int64_t last_frame_pts_ = INT64_MIN;
  uint64_t sequence_ = 0, frames_received_ = 0, frames_dropped_ = 0, reconnects_ = 0;

  std::deque<npc_event> events_;
  uint64_t events_dropped_ = 0;

  std::thread supervisor_;
};

}  // namespace npc
