// The C ABI (npc_bridge.h): integer handles over npc::Client / npc::Performer.
//
// Why a registry of integer handles instead of raw pointers: game scripts call after teardown
// (scene unload, editor domain reload, a destroyed component's late Update). With pointers that
// is a use-after-free; with never-reused handles it is a clean NPC_ERR_CLOSED. A lookup returns a
// shared_ptr, so an object stays alive for the duration of a call even if another thread
// destroys it meanwhile (the call then reports NPC_ERR_CLOSED from the object itself).
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "core.hpp"

#ifndef NPC_BRIDGE_VERSION_STRING
#define NPC_BRIDGE_VERSION_STRING "0.1.0"
#endif

namespace {

thread_local std::string g_last_error;

struct Registry {
  std::mutex mu;
  uint64_t next = 1;
  std::map<uint64_t, std::shared_ptr<npc::Client>> clients;
  std::map<uint64_t, std::pair<std::shared_ptr<npc::Performer>, uint64_t>> performers;
};

Registry& Reg() {
  // Leaked on purpose: engines unload plugins in arbitrary order at exit, and a static
  // destructor running after the last npc_* call could race with a late one.
  static Registry* r = new Registry();
  return *r;
}

npc_result Fail(npc_result code, std::string message) {
  g_last_error = std::move(message);
  return code;
}

npc_result Done(const npc::Status& st) {
  if (!st.ok() && st.code != NPC_NO_FRAME && st.code != NPC_NO_EVENT) g_last_error = st.message;
  return st.code;
}

npc_result FindClient(npc_client_t h, std::shared_ptr<npc::Client>* out) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (h == 0 || h >= r.next) return Fail(NPC_ERR_BAD_HANDLE, "unknown client handle");
  auto it = r.clients.find(h);
  if (it == r.clients.end()) return Fail(NPC_ERR_CLOSED, "the client was destroyed");
  *out = it->second;
  return NPC_OK;
}

npc_result FindPerformer(npc_performer_t h, std::shared_ptr<npc::Performer>* out) {
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (h == 0 || h >= r.next) return Fail(NPC_ERR_BAD_HANDLE, "unknown performer handle");
  auto it = r.performers.find(h);
  if (it == r.performers.end())
    return Fail(NPC_ERR_CLOSED, "the performer (or its client) was destroyed");
  *out = it->second.first;
  return NPC_OK;
}

std::string Str(const char* s) { return s ? std::string(s) : std::string(); }

}  // namespace

extern "C" {

NPC_API uint32_t npc_bridge_abi_version(void) { return NPC_BRIDGE_ABI_VERSION; }
NPC_API const char* npc_bridge_version(void) { return NPC_BRIDGE_VERSION_STRING; }
NPC_API const char* npc_last_error(void) { return g_last_error.c_str(); }

NPC_API const char* npc_result_name(int32_t result) {
  switch (result) {
#define NAME(x) case x: return #x;
    NAME(NPC_OK) NAME(NPC_ERR_CANCELLED) NAME(NPC_ERR_UNKNOWN) NAME(NPC_ERR_INVALID_ARGUMENT)
    NAME(NPC_ERR_DEADLINE_EXCEEDED) NAME(NPC_ERR_NOT_FOUND) NAME(NPC_ERR_ALREADY_EXISTS)
    NAME(NPC_ERR_PERMISSION_DENIED) NAME(NPC_ERR_RESOURCE_EXHAUSTED)
    NAME(NPC_ERR_FAILED_PRECONDITION) NAME(NPC_ERR_ABORTED) NAME(NPC_ERR_OUT_OF_RANGE)
    NAME(NPC_ERR_UNIMPLEMENTED) NAME(NPC_ERR_INTERNAL) NAME(NPC_ERR_UNAVAILABLE)
    NAME(NPC_ERR_DATA_LOSS) NAME(NPC_ERR_UNAUTHENTICATED) NAME(NPC_ERR_NULL_ARGUMENT)
    NAME(NPC_ERR_BAD_HANDLE) NAME(NPC_ERR_CLOSED) NAME(NPC_ERR_BUFFER_TOO_SMALL)
    NAME(NPC_ERR_BUFFER_FULL) NAME(NPC_ERR_NOT_STREAMING) NAME(NPC_NO_FRAME) NAME(NPC_NO_EVENT)
#undef NAME
    default: return "NPC_UNKNOWN_RESULT";
  }
}

NPC_API npc_result npc_bridge_shutdown_all(void) {
  Registry& r = Reg();
  std::map<uint64_t, std::shared_ptr<npc::Client>> clients;
  std::map<uint64_t, std::pair<std::shared_ptr<npc::Performer>, uint64_t>> performers;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    clients.swap(r.clients);
    performers.swap(r.performers);
  }
  for (auto& [h, p] : performers) p.first->Destroy();  // joins outside the registry lock
  for (auto& [h, c] : clients) c->Shutdown();
  return NPC_OK;
}

// ---- client -----------------------------------------------------------------------------------

NPC_API void npc_client_config_init(npc_client_config* c) {
  if (c == nullptr) return;
  std::memset(c, 0, sizeof(*c));
  c->struct_size = sizeof(*c);
}

NPC_API npc_result npc_client_create(const npc_client_config* config, npc_client_t* out) {
  if (out == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  *out = 0;
  npc::ClientOptions o;
  if (config != nullptr) {
    if (config->struct_size < sizeof(npc_client_config))
      return Fail(NPC_ERR_INVALID_ARGUMENT, "config->struct_size is too small (call npc_client_config_init)");
    if (config->target) o.target = config->target;
    o.use_tls = config->use_tls != 0;
    o.tls_root_certs_pem = Str(config->tls_root_certs_pem);
    o.client_name = Str(config->client_name);
    if (config->reconnect_min_ms) o.reconnect_min_ms = config->reconnect_min_ms;
    if (config->reconnect_max_ms) o.reconnect_max_ms = config->reconnect_max_ms;
    if (config->frame_queue_capacity) o.frame_queue_capacity = config->frame_queue_capacity;
    if (config->max_audio_ahead_ms) o.max_audio_ahead_ms = config->max_audio_ahead_ms;
  }
  std::shared_ptr<npc::Client> client;
  npc::Status st = npc::Client::Create(o, &client);
  if (!st.ok()) return Done(st);
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  const uint64_t h = r.next++;
  r.clients[h] = std::move(client);
  *out = h;
  return NPC_OK;
}

NPC_API npc_result npc_client_destroy(npc_client_t h) {
  std::shared_ptr<npc::Client> client;
  std::vector<std::shared_ptr<npc::Performer>> owned;
  {
    Registry& r = Reg();
    std::lock_guard<std::mutex> lock(r.mu);
    if (h == 0 || h >= r.next) return Fail(NPC_ERR_BAD_HANDLE, "unknown client handle");
    auto it = r.clients.find(h);
    if (it == r.clients.end()) return Fail(NPC_ERR_CLOSED, "the client was already destroyed");
    client = std::move(it->second);
    r.clients.erase(it);
    for (auto p = r.performers.begin(); p != r.performers.end();) {
      if (p->second.second == h) {
        owned.push_back(std::move(p->second.first));
        p = r.performers.erase(p);
      } else {
        ++p;
      }
    }
  }
  for (auto& p : owned) p->Destroy();
  client->Shutdown();
  return NPC_OK;
}

NPC_API npc_result npc_client_get_state(npc_client_t h, npc_connection_state* out) {
  if (out == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  *out = c->State();
  return NPC_OK;
}

NPC_API npc_result npc_client_wait_ready(npc_client_t h, uint32_t timeout_ms) {
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  return Done(c->WaitReady(timeout_ms));
}

NPC_API npc_result npc_client_set_connection_callback(npc_client_t h, npc_connection_callback cb,
                                                      void* user) {
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  if (cb == nullptr) {
    c->SetConnectionCallback(nullptr);
  } else {
    c->SetConnectionCallback([cb, user](npc_connection_state s) { cb(user, s); });
  }
  return NPC_OK;
}

NPC_API npc_result npc_client_get_server_info(npc_client_t h, uint32_t timeout_ms,
                                              npc_server_info* out) {
  if (out == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  return Done(c->GetServerInfo(timeout_ms, out));
}

NPC_API npc_result npc_client_register_npc(npc_client_t h, const npc_register_params* params,
                                           uint32_t timeout_ms, char* id_out, size_t id_capacity) {
  if (params == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "params is NULL");
  if (params->image_count > 0 && params->images == nullptr)
    return Fail(NPC_ERR_NULL_ARGUMENT, "params->images is NULL");
  if (params->image_count > 16) return Fail(NPC_ERR_OUT_OF_RANGE, "at most 16 images");
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  npc::RegisterNpcParams p;
  p.npc_id = Str(params->npc_id);
  p.display_name = Str(params->display_name);
  p.default_emotion = Str(params->default_emotion);
  p.default_intensity = params->default_intensity;
  for (size_t k = 0; k < params->image_count; ++k) {
    const npc_image& img = params->images[k];
    if (img.data == nullptr || img.size == 0)
      return Fail(NPC_ERR_NULL_ARGUMENT, "image " + std::to_string(k) + " is empty");
    if (img.size > (64u << 20)) return Fail(NPC_ERR_OUT_OF_RANGE, "an image exceeds 64 MiB");
    p.images.emplace_back(img.data, img.data + img.size);
  }
  std::string id;
  npc::Status st = c->RegisterNpc(p, timeout_ms, &id);
  if (!st.ok()) return Done(st);
  if (id_out != nullptr && id_capacity > 0) {
    if (id.size() + 1 > id_capacity)
      return Fail(NPC_ERR_BUFFER_TOO_SMALL, "registered '" + id + "' but id_out is too small");
    npc::CopyString(id, id_out, id_capacity);
  }
  return NPC_OK;
}

NPC_API npc_result npc_client_delete_npc(npc_client_t h, const char* npc_id, uint32_t timeout_ms) {
  if (npc_id == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "npc_id is NULL");
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  return Done(c->DeleteNpc(npc_id, timeout_ms));
}

// ---- performer --------------------------------------------------------------------------------

NPC_API void npc_performer_config_init(npc_performer_config* c) {
  if (c == nullptr) return;
  std::memset(c, 0, sizeof(*c));
  c->struct_size = sizeof(*c);
  c->texture_format = NPC_TEXTURE_BC1;
  c->initial_intensity = 1.0f;
}

NPC_API npc_result npc_performer_create(npc_client_t h, const npc_performer_config* config,
                                        npc_performer_t* out) {
  if (out == nullptr || config == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "config or out is NULL");
  *out = 0;
  if (config->struct_size < sizeof(npc_performer_config))
    return Fail(NPC_ERR_INVALID_ARGUMENT, "config->struct_size is too small (call npc_performer_config_init)");
  std::shared_ptr<npc::Client> c;
  if (npc_result e = FindClient(h, &c)) return e;
  npc::PerformerOptions o;
  o.npc_id = Str(config->npc_id);
  o.texture_format = config->texture_format;
  o.bottom_up = config->bottom_up != 0;
  o.seed = config->seed;
  o.take_over = config->take_over != 0;
  o.initial_emotion = Str(config->initial_emotion);
  o.initial_intensity = config->initial_intensity;
  std::shared_ptr<npc::Performer> p;
  npc::Status st = c->CreatePerformer(o, &p);
  if (!st.ok()) return Done(st);
  Registry& r = Reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.clients.find(h) == r.clients.end()) {  // the client was destroyed meanwhile
    p->Destroy();
    return Fail(NPC_ERR_CLOSED, "the client was destroyed");
  }
  const uint64_t ph = r.next++;
  r.performers[ph] = {std::move(p), h};
  *out = ph;
  return NPC_OK;
}

NPC_API npc_result npc_performer_destroy(npc_performer_t h) {
  std::shared_ptr<npc::Performer> p;
  {
    Registry& r = Reg();
    std::lock_guard<std::mutex> lock(r.mu);
    if (h == 0 || h >= r.next) return Fail(NPC_ERR_BAD_HANDLE, "unknown performer handle");
    auto it = r.performers.find(h);
    if (it == r.performers.end()) return Fail(NPC_ERR_CLOSED, "the performer was already destroyed");
    p = std::move(it->second.first);
    r.performers.erase(it);
  }
  p->Destroy();
  return NPC_OK;
}

#define WITH_PERFORMER(h)                          \
  std::shared_ptr<npc::Performer> p;               \
  if (npc_result e = FindPerformer(h, &p)) return e

NPC_API npc_result npc_performer_stop(npc_performer_t h, int32_t immediate) {
  WITH_PERFORMER(h);
  return Done(p->Stop(immediate != 0));
}

NPC_API npc_result npc_performer_wait_streaming(npc_performer_t h, uint32_t timeout_ms) {
  WITH_PERFORMER(h);
  return Done(p->WaitStreaming(timeout_ms));
}

NPC_API npc_result npc_performer_get_status(npc_performer_t h, npc_performer_status* out) {
  if (out == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  WITH_PERFORMER(h);
  return Done(p->GetStatus(out));
}

NPC_API npc_result npc_performer_push_audio_pcm16(npc_performer_t h, npc_channel channel,
                                                  const int16_t* samples, size_t count,
                                                  uint32_t sample_rate, int64_t pts_us) {
  WITH_PERFORMER(h);
  return Done(p->PushAudioPcm16(channel, samples, count, sample_rate, pts_us));
}

NPC_API npc_result npc_performer_push_audio_float(npc_performer_t h, npc_channel channel,
                                                  const float* samples, size_t count,
                                                  uint32_t sample_rate, int64_t pts_us) {
  WITH_PERFORMER(h);
  return Done(p->PushAudioFloat(channel, samples, count, sample_rate, pts_us));
}

NPC_API npc_result npc_performer_set_emotion(npc_performer_t h, const char* name, float intensity,
                                             float transition_s, int64_t pts_us) {
  if (name == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "name is NULL");
  WITH_PERFORMER(h);
  return Done(p->SetEmotion(name, intensity, transition_s, pts_us));
}

NPC_API npc_result npc_performer_set_emotion_weights(npc_performer_t h, const float* weights,
                                                     size_t count, float transition_s,
                                                     int64_t pts_us) {
  if (weights == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "weights is NULL");
  if (count > 256) return Fail(NPC_ERR_OUT_OF_RANGE, "at most 256 emotion weights");
  WITH_PERFORMER(h);
  return Done(p->SetEmotionWeights(std::vector<float>(weights, weights + count), transition_s,
                                   pts_us));
}

NPC_API npc_result npc_performer_mark_line(npc_performer_t h, const char* line_id,
                                           int64_t start_pts_us, int64_t end_pts_us,
                                           const char* text) {
  if (line_id == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "line_id is NULL");
  WITH_PERFORMER(h);
  return Done(p->MarkLine(line_id, start_pts_us, end_pts_us, Str(text)));
}

NPC_API npc_result npc_performer_timeline_us(npc_performer_t h, int64_t* now_us,
                                             int64_t* playback_clock_us) {
  WITH_PERFORMER(h);
  if (now_us) *now_us = p->TimelineUs();
  if (playback_clock_us) *playback_clock_us = p->PlaybackClockUs();
  return NPC_OK;
}

NPC_API npc_result npc_performer_pop_frame(npc_performer_t h, int64_t clock_us,
                                           npc_frame_info* info, uint8_t* dst,
                                           size_t dst_capacity) {
  if (info == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "info is NULL");
  if (dst == nullptr && dst_capacity > 0) return Fail(NPC_ERR_NULL_ARGUMENT, "dst is NULL");
  WITH_PERFORMER(h);
  return Done(p->PopFrame(clock_us, info, dst, dst_capacity));
}

NPC_API npc_result npc_performer_poll_event(npc_performer_t h, npc_event* out) {
  if (out == nullptr) return Fail(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  WITH_PERFORMER(h);
  return Done(p->PollEvent(out));
}

}  // extern "C"
