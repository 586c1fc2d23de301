// npc_bridge.hpp — C++ API of the native bridge core (used by the Unreal plugin and the tests).
//
// Same objects and semantics as the C ABI in npc_bridge.h (which is a thin handle layer over
// these classes), with std::string and std::function instead of buffers and function pointers.
// No gRPC or protobuf header is included, so an engine module links the core without them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "npc_bridge.h"

namespace npc {

// The outcome of a call: a code (npc_result) and, when it failed, a message naming the problem.
struct Status {
  npc_result code = NPC_OK;
  std::string message;

  bool ok() const { return code == NPC_OK; }
  static Status Ok() { return {}; }
  static Status Error(npc_result code, std::string message) { return {code, std::move(message)}; }
};

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  bool use_tls = false;
  std::string tls_root_certs_pem;   // empty: system roots
  std::string client_name;
  uint32_t reconnect_min_ms = 100;  // first retry; doubles (jittered) up to reconnect_max_ms
  // A local sidecar should be back in a blink once it restarts; retrying at most every 0.5 s
  // costs nothing on loopback and keeps "frames resume within 2 s" with room to spare.
  uint32_t reconnect_max_ms = 500;
  uint32_t frame_queue_capacity = 32;
  uint32_t max_audio_ahead_ms = 30000;
};

struct RegisterNpcParams {
  std::string npc_id;               // empty: the server assigns one
  std::string display_name;
  std::vector<std::vector<uint8_t>> images;  // 1..4 PNG/JPEG
  std::string default_emotion;
  float default_intensity = 1.0f;
};

struct PerformerOptions {
  std::string npc_id;
  npc_texture_format texture_format = NPC_TEXTURE_BC1;
  bool bottom_up = false;
  uint64_t seed = 0;
  bool take_over = false;
  std::string initial_emotion;      // empty: the NPC's default
  float initial_intensity = 1.0f;
};

// A frame popped from a performer: metadata plus the texture payload (BC1 or RGBA8 bytes).
struct Frame {
  npc_frame_info info{};
  std::vector<uint8_t> payload;
};

struct ClientCore;
struct PerformerCore;
class Performer;

// One gRPC channel to one sidecar, shared by every performer created from it.
class Client {
 public:
  // Never blocks and succeeds without a server: the channel connects in the background.
  static Status Create(const ClientOptions& options, std::shared_ptr<Client>* out);
  ~Client();  // Shutdown()

  // Stops every performer (immediately) and closes the channel. Later calls return NPC_ERR_CLOSED.
  void Shutdown();

  npc_connection_state State() const;
  Status WaitReady(uint32_t timeout_ms) const;
  // Runs on a bridge thread on every connectivity change; keep it short.
  void SetConnectionCallback(std::function<void(npc_connection_state)> callback);

  Status GetServerInfo(uint32_t timeout_ms, npc_server_info* out) const;
  Status RegisterNpc(const RegisterNpcParams& params, uint32_t timeout_ms, std::string* id) const;
  Status DeleteNpc(const std::string& npc_id, uint32_t timeout_ms) const;

  // Starts a performer: it streams (and reconnects) in the background from now on.
  Status CreatePerformer(const PerformerOptions& options, std::shared_ptr<Performer>* out);

  explicit Client(std::shared_ptr<ClientCore> core);

 private:
  std::shared_ptr<ClientCore> core_;
};

// One NPC's live performance: audio and cues in, frames and events out. Thread-safe.
class Performer {
 public:
  ~Performer();  // Destroy()

  // Cancels the stream and joins the bridge threads. Later calls return NPC_ERR_CLOSED.
  void Destroy();
  // Graceful end: the server renders the audio it has; the state then becomes STOPPED.
  Status Stop(bool immediate);
  Status WaitStreaming(uint32_t timeout_ms) const;
  Status GetStatus(npc_performer_status* out) const;

  Status PushAudioPcm16(npc_channel channel, const int16_t* samples, size_t count,
                        uint32_t sample_rate, int64_t pts_us = NPC_PTS_AUTO);
  Status PushAudioFloat(npc_channel channel, const float* samples, size_t count,
                        uint32_t sample_rate, int64_t pts_us = NPC_PTS_AUTO);
  Status SetEmotion(const std::string& name, float intensity, float transition_s,
                    int64_t pts_us = NPC_PTS_AUTO);
  Status SetEmotionWeights(const std::vector<float>& weights, float transition_s,
                           int64_t pts_us = NPC_PTS_AUTO);
  Status MarkLine(const std::string& line_id, int64_t start_pts_us, int64_t end_pts_us,
                  const std::string& text);

  int64_t TimelineUs() const;
  int64_t PlaybackClockUs() const;  // TimelineUs() - latency: the pts to show now

  // Copies into dst (the engine's texture memory): see npc_performer_pop_frame.
  Status PopFrame(int64_t clock_us, npc_frame_info* info, uint8_t* dst, size_t capacity);
  Status PopFrame(int64_t clock_us, Frame* out);
  // Events (state changes, line/emotion/late-audio/stopped) are polled on the engine's thread,
  // never called back: an engine component handles them in its tick with no locking.
  Status PollEvent(npc_event* out);

  explicit Performer(std::shared_ptr<PerformerCore> core);

 private:
  std::shared_ptr<PerformerCore> core_;
};

}  // namespace npc
