// The client: one gRPC channel to the sidecar, its connectivity watcher, and the unary calls.
#include <algorithm>
#include <cstring>

#include "core.hpp"

namespace npc {

namespace {
// Unary calls must not hang the engine when the server is gone: every one has a deadline.
std::chrono::system_clock::time_point Deadline(uint32_t timeout_ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
}

npc_connection_state ToState(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE: return NPC_CONNECTION_IDLE;
    case GRPC_CHANNEL_CONNECTING: return NPC_CONNECTION_CONNECTING;
    case GRPC_CHANNEL_READY: return NPC_CONNECTION_READY;
    case GRPC_CHANNEL_TRANSIENT_FAILURE: return NPC_CONNECTION_TRANSIENT_FAILURE;
    default: return NPC_CONNECTION_SHUTDOWN;
  }
}
}  // namespace

Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return Status::Ok();
  // Codes 1..16 of npc_result are the gRPC codes, so the number passes through unchanged.
  return Status::Error(static_cast<npc_result>(status.error_code()),
                       what + ": " + status.error_message());
}

void CopyString(const std::string& s, char* dst, size_t capacity) {
  if (dst == nullptr || capacity == 0) return;
  const size_t n = std::min(s.size(), capacity - 1);
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

ClientCore::ClientCore(ClientOptions opts) : options(std::move(opts)) {}

ClientCore::~ClientCore() { Shutdown(); }

Status ClientCore::Start() {
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff grows to 120 s; a game needs its local sidecar back within
  // a second or two of a restart, so the channel retries on the bridge's own schedule.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(options.reconnect_min_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(options.reconnect_min_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(options.reconnect_max_ms));
  if (!options.client_name.empty()) args.SetUserAgentPrefix(options.client_name);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs_pem;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  channel = grpc::CreateCustomChannel(options.target, creds, args);
  if (!channel) return Status::Error(NPC_ERR_INVALID_ARGUMENT, "cannot create a channel to " +
                                                                   options.target);
  stub = pb::NpcRuntime::NewStub(channel);
  watcher_ = std::thread([this] { WatchLoop(); });
  return Status::Ok();
}

void ClientCore::WatchLoop() {
  grpc_connectivity_state last = channel->GetState(false);
  while (!closed_.load()) {
    // Bounded waits so Shutdown() is noticed within 200 ms.
    channel->WaitForStateChange(last, std::chrono::system_clock::now() +
                                          std::chrono::milliseconds(200));
    const grpc_connectivity_state now = channel->GetState(false);
    if (now == last) continue;
    last = now;
    std::function<void(npc_connection_state)> cb;
    {
      std::lock_guard<std::mutex> lock(mu);
      cb = on_state;
    }
    if (cb) cb(ToState(now));
  }
}

void ClientCore::Register(const std::shared_ptr<PerformerCore>& p) {
  std::lock_guard<std::mutex> lock(mu);
  performers_.erase(std::remove_if(performers_.begin(), performers_.end(),
                                   [](const auto& w) { return w.expired(); }),
                    performers_.end());
  performers_.push_back(p);
}

void ClientCore::Shutdown() {
  if (closed_.exchange(true)) return;
  std::vector<std::weak_ptr<PerformerCore>> performers;
  {
    std::lock_guard<std::mutex> lock(mu);
    performers.swap(performers_);
    on_state = nullptr;
  }
  for (auto& w : performers)
    if (auto p = w.lock()) p->Destroy();
  if (watcher_.joinable()) watcher_.join();
}

Status ClientCore::Info(uint32_t timeout_ms, pb::ServerInfo* out) {
  if (closed_) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    if (info_) {
      *out = *info_;
      return Status::Ok();
    }
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  pb::GetServerInfoRequest req;
  req.set_client_protocol_version(1);
  pb::ServerInfo info;
  Status st = FromGrpc(stub->GetServerInfo(&ctx, req, &info), "GetServerInfo");
  if (!st.ok()) return st;
  std::lock_guard<std::mutex> lock(info_mu_);
  info_ = info;
  *out = info;
  return Status::Ok();
}

std::optional<ServerFacts> ClientCore::Facts() {
  std::lock_guard<std::mutex> lock(info_mu_);
  if (!info_) return std::nullopt;
  ServerFacts f;
  if (info_->limits().model_sample_rate() > 0) f.model_sample_rate = info_->limits().model_sample_rate();
  if (info_->limits().max_audio_gap_us() > 0)
    f.max_audio_gap_us = static_cast<int64_t>(info_->limits().max_audio_gap_us());
  if (info_->limits().max_transition_s() > 0) f.max_transition_s = info_->limits().max_transition_s();
  for (const auto& t : info_->emotions().tags()) f.tags.push_back(t);
  for (const auto& p : info_->emotions().presets()) f.presets.push_back(p.name());
  return f;
}

// ---- npc::Client ---------------------------------------------------------------------------

Client::Client(std::shared_ptr<ClientCore> core) : core_(std::move(core)) {}

Client::~Client() { Shutdown(); }

Status Client::Create(const ClientOptions& options, std::shared_ptr<Client>* out) {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  if (options.target.empty()) return Status::Error(NPC_ERR_INVALID_ARGUMENT, "target is empty");
  if (options.reconnect_min_ms == 0 || options.reconnect_max_ms < options.reconnect_min_ms)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                         "need 0 < reconnect_min_ms <= reconnect_max_ms");
  if (options.frame_queue_capacity == 0 || options.frame_queue_capacity > 1024)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "frame_queue_capacity must be 1..1024");
  if (options.max_audio_ahead_ms == 0 || options.max_audio_ahead_ms > 600'000)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "max_audio_ahead_ms must be 1..600000");
  auto core = std::make_shared<ClientCore>(options);
  Status st = core->Start();
  if (!st.ok()) return st;
  *out = std::make_shared<Client>(std::move(core));
  return Status::Ok();
}

void Client::Shutdown() { core_->Shutdown(); }

npc_connection_state Client::State() const {
  if (core_->closed()) return NPC_CONNECTION_SHUTDOWN;
  return ToState(core_->channel->GetState(false));
}

Status Client::WaitReady(uint32_t timeout_ms) const {
  if (core_->closed()) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  if (core_->channel->WaitForConnected(Deadline(timeout_ms))) return Status::Ok();
  return Status::Error(NPC_ERR_DEADLINE_EXCEEDED,
                       "no connection to " + core_->options.target + " within " +
                           std::to_string(timeout_ms) + " ms");
}

void Client::SetConnectionCallback(std::function<void(npc_connection_state)> callback) {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (!core_->closed()) core_->on_state = std::move(callback);
}

Status Client::GetServerInfo(uint32_t timeout_ms, npc_server_info* out) const {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  pb::ServerInfo info;
  Status st = core_->Info(timeout_ms, &info);
  if (!st.ok()) return st;
  npc_server_info r{};
  r.struct_size = sizeof(r);
  r.protocol_version = info.protocol_version();
  r.fps = info.fps();
  if (info.frame_sizes_size() > 0) {
    r.width = info.frame_sizes(0).width();
    r.height = info.frame_sizes(0).height();
  }
  r.chunk_frames = info.chunk_frames();
  r.latency_us = info.latency_us();
  r.model_sample_rate = info.limits().model_sample_rate();
  r.emotion_count = static_cast<uint32_t>(info.emotions().tags_size());
  CopyString(info.server_version(), r.server_version, sizeof(r.server_version));
  CopyString(info.model().name(), r.model_name, sizeof(r.model_name));
  CopyString(info.model().config(), r.model_config, sizeof(r.model_config));
  std::string tags;
  for (const auto& t : info.emotions().tags()) tags += (tags.empty() ? "" : ",") + t;
  CopyString(tags, r.emotion_tags, sizeof(r.emotion_tags));
  const uint32_t size = out->struct_size ? std::min<uint32_t>(out->struct_size, sizeof(r))
                                         : static_cast<uint32_t>(sizeof(r));
  std::memcpy(out, &r, size);
  out->struct_size = size;
  return Status::Ok();
}

Status Client::RegisterNpc(const RegisterNpcParams& params, uint32_t timeout_ms,
                           std::string* id) const {
  if (core_->closed()) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  if (params.images.empty())
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "at least one reference image is required");
  pb::RegisterNpcRequest req;
  req.set_npc_id(params.npc_id);
  req.set_display_name(params.display_name);
  for (const auto& img : params.images) req.add_reference_images(img.data(), img.size());
  if (!params.default_emotion.empty()) {
    req.mutable_default_emotion()->set_name(params.default_emotion);
    req.mutable_default_emotion()->set_intensity(params.default_intensity);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  pb::Npc npc;
  Status st = FromGrpc(core_->stub->RegisterNpc(&ctx, req, &npc), "RegisterNpc");
  if (st.ok() && id != nullptr) *id = npc.npc_id();
  return st;
}

Status Client::DeleteNpc(const std::string& npc_id, uint32_t timeout_ms) const {
  if (core_->closed()) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  pb::DeleteNpcRequest req;
  req.set_npc_id(npc_id);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_ms));
  pb::DeleteNpcResponse resp;
  return FromGrpc(core_->stub->DeleteNpc(&ctx, req, &resp), "DeleteNpc");
}

}  // namespace npc
