// The performer: one NPC's Perform stream, kept alive across server restarts.
//
// Timeline. The performer's clock starts at 0 when it is created and follows the wall clock.
// Each stream s the supervisor opens has its own pts 0 (the server's t0, which it sets just
// before sending PerformanceStarted); the bridge records the performer time `origin` at which
// Started arrived and converts both ways: stream pts = performer pts - origin. So engine-facing
// pts stay continuous and monotonic across reconnects, and audio the engine pushed ahead of time
// is simply re-sent, re-based, on the new stream.
#include <algorithm>
#include <cstring>
#include <random>

#include "core.hpp"

namespace npc {

namespace {
constexpr uint32_t kWireRate = 16000;          // the model rate; legal on every server
constexpr size_t kMaxWireChunk = kWireRate / 2;  // 0.5 s per AudioChunk message
constexpr int64_t kAutoSlackUs = 50'000;       // AUTO audio this late still continues the run
constexpr int64_t kHistoryUs = 2'000'000;      // sent items kept this long for a reopened stream
constexpr size_t kMaxPendingCues = 200;        // below the server's 256 pending cues / lines
constexpr size_t kMaxEvents = 256;
constexpr size_t kMaxLogItems = 8192;          // hard bound on the outgoing log
constexpr int64_t kKeepAliveSilenceUs = 10'000;
constexpr auto kWriterTick = std::chrono::milliseconds(20);

const char* kStateNames[] = {"CONNECTING", "STREAMING", "RECONNECTING", "STOPPED", "FAILED"};

bool Retryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:                 // server ended a stream we did not stop
    case grpc::StatusCode::UNAVAILABLE:        // server gone, restarting or shutting down
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::CANCELLED:          // by the server or a proxy, not by us
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED: // too many sessions: a slot may free up
      return true;
    default:                                   // NOT_FOUND, INVALID_ARGUMENT, ABORTED (taken
      return false;                            // over by another client), ...: retrying won't help
  }
}

int64_t SamplesToUs(uint64_t n, uint32_t rate) {
  return static_cast<int64_t>(n * 1'000'000 / rate);
}

template <class T>
void CopyOut(const T& src, T* dst) {
  // Honour the caller's struct_size so a caller built against an older, shorter struct is safe.
  const uint32_t size = dst->struct_size == 0
                            ? static_cast<uint32_t>(sizeof(T))
                            : std::min<uint32_t>(dst->struct_size, static_cast<uint32_t>(sizeof(T)));
  std::memcpy(static_cast<void*>(dst), &src, size);
  dst->struct_size = size;
}

bool IsTerminal(npc_performer_state s) {
  return s == NPC_PERFORMER_STOPPED || s == NPC_PERFORMER_FAILED;
}
}  // namespace

struct PerformerCore::Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::PerformRequest, pb::PerformResponse>> rw;
  bool started = false;       // PerformanceStarted received
  bool ended = false;         // the reader saw the end of the response stream
  bool got_frames = false;
  bool reconnect = false;
  int64_t open_us = 0;        // performer time the stream was opened (initial emotion taken)
  int64_t origin = 0;         // performer pts of this stream's pts 0
  uint64_t cursor = 0;        // seq of the next log item to consider
  int64_t sent_end[2] = {0, 0};  // stream pts where the sent audio of each channel ends
  bool writes_done = false;
};

PerformerCore::PerformerCore(std::shared_ptr<ClientCore> client, PerformerOptions options)
    : client_(std::move(client)), options_(std::move(options)), origin_(SteadyClock::now()) {}

PerformerCore::~PerformerCore() { Destroy(); }

void PerformerCore::Start() { supervisor_ = std::thread([this] { Supervise(); }); }

int64_t PerformerCore::NowUs() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - origin_)
      .count();
}

void PerformerCore::Destroy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.exchange(true)) return;
    if (live_ != nullptr) live_->ctx.TryCancel();  // unblocks the reader and a blocked Write
    cv_.notify_all();
  }
  if (supervisor_.joinable()) supervisor_.join();
}

// ---- state and events ------------------------------------------------------------------------

void PerformerCore::PushEvent(const npc_event& ev) {
  if (events_.size() >= kMaxEvents) {  // bounded: an engine that never polls loses old events
    events_.pop_front();
    ++events_dropped_;
  }
  events_.push_back(ev);
}

void PerformerCore::SetState(npc_performer_state state, npc_result error,
                             const std::string& message) {
  if (state_ == state && error_ == error) return;
  state_ = state;
  error_ = error;
  if (error != NPC_OK) error_message_ = message;
  npc_event ev{};
  ev.struct_size = sizeof(ev);
  ev.kind = NPC_EVENT_STATE_CHANGED;
  ev.state = state;
  ev.error = error;
  ev.pts_us = NowUs();
  CopyString(std::string(kStateNames[state]) + (message.empty() ? "" : ": " + message),
             ev.message, sizeof(ev.message));
  PushEvent(ev);
  cv_.notify_all();
}

bool PerformerCore::SleepInterruptible(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return closed_.load() || stop_requested_; });
  return !closed_.load() && !stop_requested_;
}

// ---- the supervisor: connect, stream, reconnect with backoff ---------------------------------

void PerformerCore::Supervise() {
  std::mt19937 rng(std::random_device{}());
  uint32_t attempt = 0;
  bool reconnect = false;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_ || stop_requested_ || IsTerminal(state_)) break;
    }
    // Wait for a connected channel in short slices so Destroy/Stop are honoured promptly; the
    // channel itself retries the TCP connection on the reconnect_min..max schedule.
    if (!client_->channel->WaitForConnected(std::chrono::system_clock::now() +
                                            std::chrono::milliseconds(200)))
      continue;

    // Facts for validation (vocabulary, presets, limits) and a clear NOT_FOUND before streaming.
    pb::ServerInfo info;
    Status st = client_->Info(2000, &info);
    pb::Npc npc;
    if (st.ok()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      pb::GetNpcRequest req;
      req.set_npc_id(options_.npc_id);
      st = FromGrpc(client_->stub->GetNpc(&ctx, req, &npc), "GetNpc");
    }
    grpc::Status end;
    bool got_frames = false;
    if (st.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        facts_ = client_->Facts();
        npc_presets_.clear();
        for (const auto& p : npc.presets()) npc_presets_.push_back(p.name());
      }
      end = RunStream(reconnect, &got_frames);
    } else {
      end = grpc::Status(static_cast<grpc::StatusCode>(st.code), st.message);
    }

    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) break;
    if (stop_requested_) {
      SetState(NPC_PERFORMER_STOPPED, NPC_OK, "");
      break;
    }
    const npc_result code = static_cast<npc_result>(end.error_code());
    if (!Retryable(end.error_code())) {
      SetState(NPC_PERFORMER_FAILED, code, end.error_message());
      break;
    }
    SetState(NPC_PERFORMER_RECONNECTING, end.ok() ? NPC_ERR_UNAVAILABLE : code,
             end.ok() ? "the server ended the stream" : end.error_message());
    reconnect = reconnect || got_frames || have_started_;
    if (got_frames) attempt = 0;  // a stream that worked resets the backoff
    lock.unlock();
    // Exponential backoff with +-20% jitter, so many NPCs do not reconnect in lockstep.
    const double base = std::min<double>(client_->options.reconnect_max_ms,
                                         client_->options.reconnect_min_ms * double(1u << std::min(attempt, 16u)));
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    ++attempt;
    if (!SleepInterruptible(std::chrono::milliseconds(static_cast<int64_t>(base * jitter(rng)))))
      continue;  // the loop head sees closed / stop
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_ && !IsTerminal(state_)) SetState(NPC_PERFORMER_STOPPED, NPC_OK, "");
}

grpc::Status PerformerCore::RunStream(bool reconnect, bool* got_frames) {
  Stream s;
  s.reconnect = reconnect;
  pb::PerformRequest start_req;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return grpc::Status::CANCELLED;
    auto* start = start_req.mutable_start();
    start->set_npc_id(options_.npc_id);
    start->set_texture_format(static_cast<pb::TextureFormat>(options_.texture_format));
    start->set_seed(options_.seed);
    start->set_bottom_up(options_.bottom_up);
    // A reopened stream takes over: the server may not yet have noticed the old one is dead.
    start->set_take_over(options_.take_over || reconnect);
    start->set_client_name(client_->options.client_name);
    s.open_us = NowUs();
    *start->mutable_initial_emotion() = EmotionAt(s.open_us);
    if (start->initial_emotion().value_case() == pb::Emotion::VALUE_NOT_SET)
      start->clear_initial_emotion();  // the NPC's default emotion
  }
  // Outside the lock: opening the call waits for its initial metadata to be sent, and engine
  // calls must never wait on the network.
  s.rw = client_->stub->Perform(&s.ctx);
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_ = &s;
    if (closed_) s.ctx.TryCancel();  // Destroy ran while the call was opening
  }
  std::thread reader;
  if (s.rw->Write(start_req)) reader = std::thread([this, &s] { ReadLoop(&s); });

  std::unique_lock<std::mutex> lock(mu_);
  while (reader.joinable() && !closed_ && !s.ended) {
    if (stop_requested_ && !s.started) {  // stopped before the server answered: just leave
      s.ctx.TryCancel();
      break;
    }
    pb::PerformRequest req;
    if (s.started && NextRequest(&s, &req)) {
      lock.unlock();
      const bool ok = s.rw->Write(req);  // may block on flow control: the engine never waits
      lock.lock();
      if (!ok) break;                    // the call is over; the reader sees why
      continue;
    }
    if (stop_sent_ && !s.writes_done) {
      s.writes_done = true;
      lock.unlock();
      s.rw->WritesDone();
      lock.lock();
      continue;
    }
    if (s.started) Tick(&s);
    cv_.wait_for(lock, kWriterTick);
  }
  if (closed_) s.ctx.TryCancel();
  lock.unlock();
  if (reader.joinable()) reader.join();
  else s.ctx.TryCancel();                // Start could not be written: end the call
  grpc::Status status = s.rw->Finish();
  lock.lock();
  live_ = nullptr;
  *got_frames = s.got_frames;
  return status;
}

void PerformerCore::ReadLoop(Stream* s) {
  pb::PerformResponse resp;
  while (s->rw->Read(&resp)) {
    std::lock_guard<std::mutex> lock(mu_);
    ApplyResponse(s, resp);
  }
  std::lock_guard<std::mutex> lock(mu_);
  s->ended = true;
  cv_.notify_all();
}

void PerformerCore::ApplyResponse(Stream* s, const pb::PerformResponse& resp) {
  if (resp.has_started()) {
    s->started = true;
    s->origin = NowUs();  // the server set t0 just before sending Started
    s->cursor = 0;
    started_ = resp.started();
    have_started_ = true;
    stream_origin_us_ = s->origin;
    if (s->reconnect) ++reconnects_;
    SetState(NPC_PERFORMER_STREAMING, NPC_OK, "");
    npc_event ev{};
    ev.struct_size = sizeof(ev);
    ev.kind = NPC_EVENT_STARTED;
    ev.state = NPC_PERFORMER_STREAMING;
    ev.pts_us = s->origin;
    CopyString("session " + started_.session_id() + (s->reconnect ? " (reconnected)" : ""),
               ev.message, sizeof(ev.message));
    PushEvent(ev);
    cv_.notify_all();
    return;
  }
  if (resp.has_frame()) {
    const pb::Frame& f = resp.frame();
    const int64_t pts = s->origin + f.pts_us();
    s->got_frames = true;
    ++frames_received_;
    // Monotonic pts for the engine, even across a reconnect where clocks could overlap.
    if (pts <= last_frame_pts_ || f.payload().size() != started_.payload_bytes()) {
      ++frames_dropped_;
      return;
    }
    last_frame_pts_ = pts;
    if (frames_.size() >= client_->options.frame_queue_capacity) {  // engine not popping
      frames_.pop_front();
      ++frames_dropped_;
    }
    QueuedFrame q;
    npc_frame_info& i = q.info;
    i.struct_size = sizeof(i);
    i.sequence = sequence_++;
    i.stream_index = f.index();
    i.pts_us = pts;
    i.format = static_cast<npc_texture_format>(f.format());
    i.width = f.width();
    i.height = f.height();
    i.payload_bytes = static_cast<uint32_t>(f.payload().size());
    i.speaking = f.speaking();
    i.listening = f.listening();
    i.emotion_count = static_cast<uint32_t>(std::min<int>(f.emotion_size(), NPC_MAX_EMOTIONS));
    for (uint32_t k = 0; k < i.emotion_count; ++k) i.emotion[k] = f.emotion(static_cast<int>(k));
    CopyString(f.line_id(), i.line_id, sizeof(i.line_id));
    q.payload.assign(f.payload().begin(), f.payload().end());
    frames_.push_back(std::move(q));
    return;
  }
  if (resp.has_event()) {
    const pb::PerformanceEvent& e = resp.event();
    npc_event ev{};
    ev.struct_size = sizeof(ev);
    ev.state = state_;
    ev.pts_us = s->origin + e.pts_us();
    ev.duration_us = e.duration_us();
    ev.frame_count = e.frame_count();
    CopyString(e.line_id(), ev.line_id, sizeof(ev.line_id));
    CopyString(e.message(), ev.message, sizeof(ev.message));
    switch (e.kind()) {
      case pb::PerformanceEvent::LINE_STARTED: ev.kind = NPC_EVENT_LINE_STARTED; break;
      case pb::PerformanceEvent::LINE_FINISHED: ev.kind = NPC_EVENT_LINE_FINISHED; break;
      case pb::PerformanceEvent::EMOTION_APPLIED: ev.kind = NPC_EVENT_EMOTION_APPLIED; break;
      case pb::PerformanceEvent::AUDIO_LATE: ev.kind = NPC_EVENT_AUDIO_LATE; break;
      case pb::PerformanceEvent::FRAMES_DROPPED:
        ev.kind = NPC_EVENT_FRAMES_DROPPED;
        frames_dropped_ += e.frame_count();
        break;
      case pb::PerformanceEvent::SERVER_SHUTDOWN: ev.kind = NPC_EVENT_SERVER_SHUTDOWN; break;
      case pb::PerformanceEvent::STOPPED: ev.kind = NPC_EVENT_STOPPED; break;
      default: return;  // a newer server's event kind: ignore rather than misreport
    }
    PushEvent(ev);
  }
}

// ---- the writer: turn the outgoing log into requests for the current stream -----------------

bool PerformerCore::NextRequest(Stream* s, pb::PerformRequest* req) {
  auto it = std::lower_bound(log_.begin(), log_.end(), s->cursor,
                             [](const OutItem& item, uint64_t seq) { return item.seq < seq; });
  for (; it != log_.end(); ++it) {
    const OutItem& item = *it;
    s->cursor = item.seq + 1;
    if (item.kind == OutItem::kAudio) {
      if (item.end_us <= s->origin) continue;  // entirely before this stream: nothing to render
      size_t skip = 0;
      int64_t pts = item.pts_us - s->origin;
      if (pts < 0) {                           // straddles the stream start: send the rest
        skip = static_cast<size_t>((-pts * kWireRate + 999'999) / 1'000'000);
        if (skip >= item.pcm.size()) continue;
        pts += SamplesToUs(skip, kWireRate);
      }
      const int ch = item.channel == NPC_CHANNEL_SPEAK ? 0 : 1;
      pts = std::max(pts, s->sent_end[ch]);    // never backwards on a channel
      auto* a = req->mutable_audio();
      a->set_channel(item.channel == NPC_CHANNEL_SPEAK ? pb::AUDIO_CHANNEL_SPEAK
                                                       : pb::AUDIO_CHANNEL_LISTEN);
      a->set_sample_rate(kWireRate);
      a->set_pts_us(pts);
      std::string* bytes = a->mutable_pcm16();
      bytes->resize((item.pcm.size() - skip) * 2);
      for (size_t k = skip; k < item.pcm.size(); ++k) {  // little-endian on the wire
        const uint16_t v = static_cast<uint16_t>(item.pcm[k]);
        (*bytes)[2 * (k - skip)] = static_cast<char>(v & 0xff);
        (*bytes)[2 * (k - skip) + 1] = static_cast<char>(v >> 8);
      }
      s->sent_end[ch] = pts + SamplesToUs(item.pcm.size() - skip, kWireRate);
      return true;
    }
    if (item.kind == OutItem::kEmotion) {
      if (item.pts_us <= s->open_us) continue;  // already in StartPerformance.initial_emotion
      auto* cue = req->mutable_emotion();
      *cue->mutable_emotion() = item.emotion;
      cue->set_transition_s(item.transition_s);
      cue->set_pts_us(std::max<int64_t>(0, item.pts_us - s->origin));
      return true;
    }
    if (item.kind == OutItem::kLine) {
      if (!item.line_open_end && item.end_us <= s->origin) continue;
      auto* line = req->mutable_line();
      line->set_line_id(item.line_id);
      line->set_text(item.text);
      line->set_start_pts_us(std::max<int64_t>(0, item.pts_us - s->origin));
      if (!item.line_open_end) {
        line->set_end_pts_us(std::max<int64_t>(line->start_pts_us() + 1, item.end_us - s->origin));
      }
      return true;
    }
  }
  if (stop_requested_ && !stop_sent_) {
    req->mutable_stop()->set_immediate(stop_immediate_);
    stop_sent_ = true;
    return true;
  }
  return false;
}

void PerformerCore::Tick(Stream* s) {
  const int64_t now = NowUs();
  for (int ch = 0; ch < 2; ++ch) {
    ChannelState& cs = channels_[ch];
    const npc_channel channel = ch == 0 ? NPC_CHANNEL_SPEAK : NPC_CHANNEL_LISTEN;
    // A run the engine stopped feeding: emit the resampler's held-back tail now.
    if (cs.resampler && now > cs.input_end_us + kAutoSlackUs) FlushRun(channel, &cs);
    // The server refuses an audio pts more than max_audio_gap after the previous chunk of a
    // channel (the first chunk counts from 0), so an idle channel gets a 10 ms whisper of
    // silence well within the gap: a line pushed after minutes of silence is then still legal.
    if (!stop_requested_ && facts_ && s->started) {
      const int64_t queued_end = std::max(cs.wire_end_us - s->origin, s->sent_end[ch]);
      if (now - s->origin - queued_end > facts_->max_audio_gap_us / 2) {
        std::vector<float> silence(static_cast<size_t>(kKeepAliveSilenceUs * kWireRate / 1'000'000));
        const int64_t at = std::max(now, cs.wire_end_us);
        cs.resampler.reset();
        cs.run_start_us = at;
        cs.run_out = 0;
        cs.input_end_us = at + kKeepAliveSilenceUs;
        EmitWire(channel, &cs, silence);
      }
    }
  }
  Prune();
}

void PerformerCore::EmitWire(npc_channel ch, ChannelState* cs, const std::vector<float>& wire) {
  size_t k = 0;
  while (k < wire.size()) {
    const int64_t pts = cs->run_start_us + SamplesToUs(cs->run_out + k, kWireRate);
    if (pts < cs->wire_end_us - 1) {  // a new run must not overlap audio already queued
      ++k;
      continue;
    }
    const size_t n = std::min(kMaxWireChunk, wire.size() - k);
    OutItem item;
    item.kind = OutItem::kAudio;
    item.seq = next_seq_++;
    item.channel = ch;
    item.pts_us = pts;
    item.end_us = pts + SamplesToUs(n, kWireRate);
    item.pcm.resize(n);
    for (size_t j = 0; j < n; ++j) item.pcm[j] = detail::FloatToPcm16(wire[k + j]);
    cs->wire_end_us = item.end_us;
    cs->has_audio = true;
    log_.push_back(std::move(item));
    k += n;
  }
  cs->run_out += wire.size();
  cv_.notify_all();
}

void PerformerCore::FlushRun(npc_channel ch, ChannelState* cs) {
  if (!cs->resampler) return;
  std::vector<float> tail;
  cs->resampler->Flush(&tail);
  EmitWire(ch, cs, tail);
  cs->resampler.reset();
}

void PerformerCore::Prune() {
  const int64_t horizon = NowUs() - kHistoryUs;
  while (!log_.empty()) {
    const OutItem& front = log_.front();
    const bool old = front.kind == OutItem::kLine && front.line_open_end
                         ? front.pts_us < horizon && log_.size() > 1
                         : front.end_us < horizon;
    if (!old && log_.size() <= kMaxLogItems) break;
    if (front.kind == OutItem::kEmotion) base_emotion_ = front.emotion;
    log_.pop_front();
  }
}

pb::Emotion PerformerCore::EmotionAt(int64_t pts_us) const {
  for (auto it = log_.rbegin(); it != log_.rend(); ++it)
    if (it->kind == OutItem::kEmotion && it->pts_us <= pts_us) return it->emotion;
  if (base_emotion_) return *base_emotion_;
  pb::Emotion e;
  if (!options_.initial_emotion.empty()) {
    e.mutable_tag()->set_name(options_.initial_emotion);
    e.mutable_tag()->set_intensity(options_.initial_intensity);
  }
  return e;
}

// ---- engine-facing calls -----------------------------------------------------------------------

Status PerformerCore::Stop(bool immediate) {
  std::lock_guard<std::mutex> lock(mu_);
  if (IsTerminal(state_)) return Status::Ok();  // idempotent
  stop_requested_ = true;
  stop_immediate_ = immediate;
  if (live_ == nullptr || !live_->started) SetState(NPC_PERFORMER_STOPPED, NPC_OK, "");
  cv_.notify_all();
  return Status::Ok();
}

Status PerformerCore::WaitStreaming(uint32_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool done = cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] {
    return closed_.load() || state_ == NPC_PERFORMER_STREAMING || IsTerminal(state_);
  });
  if (closed_) return Status::Error(NPC_ERR_CLOSED, "the performer was destroyed");
  if (state_ == NPC_PERFORMER_STREAMING) return Status::Ok();
  if (state_ == NPC_PERFORMER_FAILED) return Status::Error(error_, error_message_);
  if (state_ == NPC_PERFORMER_STOPPED)
    return Status::Error(NPC_ERR_NOT_STREAMING, "the performer was stopped");
  (void)done;
  return Status::Error(NPC_ERR_DEADLINE_EXCEEDED,
                       std::string("not streaming after ") + std::to_string(timeout_ms) +
                           " ms (state " + kStateNames[state_] +
                           (error_message_.empty() ? "" : ", last error: " + error_message_) + ")");
}

void PerformerCore::GetStatus(npc_performer_status* out) {
  std::lock_guard<std::mutex> lock(mu_);
  npc_performer_status r{};
  r.struct_size = sizeof(r);
  r.state = state_;
  r.error = error_;
  if (have_started_) {
    r.texture_format = static_cast<npc_texture_format>(started_.texture_format());
    r.width = started_.width();
    r.height = started_.height();
    r.fps = started_.fps();
    r.payload_bytes = started_.payload_bytes();
    r.latency_us = started_.latency_us();
  }
  r.timeline_us = NowUs();
  r.frames_received = frames_received_;
  r.frames_dropped = frames_dropped_;
  r.reconnects = reconnects_;
  r.queued_frames = frames_.size();
  CopyOut(r, out);
}

Status PerformerCore::PushAudio(npc_channel channel, const float* samples, size_t count,
                                uint32_t rate, int64_t pts_us) {
  if (channel != NPC_CHANNEL_SPEAK && channel != NPC_CHANNEL_LISTEN)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "channel must be NPC_CHANNEL_SPEAK or _LISTEN");
  if (rate < 8000 || rate > 192000)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                         "sample_rate " + std::to_string(rate) + " Hz is outside 8000..192000");
  if (count > static_cast<size_t>(rate) * 60)
    return Status::Error(NPC_ERR_OUT_OF_RANGE, "one push is limited to 60 s of audio; got " +
                                                   std::to_string(count) + " samples");
  if (pts_us != NPC_PTS_AUTO && pts_us < 0)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "pts_us is negative");
  if (count == 0) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_ || IsTerminal(state_))
    return Status::Error(NPC_ERR_NOT_STREAMING, "the performer is stopped or failed");
  const int ch = channel == NPC_CHANNEL_SPEAK ? 0 : 1;
  ChannelState& cs = channels_[ch];
  const int64_t now = NowUs();
  const int64_t tol = 1'000'000 / rate + 1;
  int64_t start;
  if (pts_us == NPC_PTS_AUTO) {
    // Continue the channel if it is (nearly) live; otherwise the audio starts now.
    start = cs.has_audio && cs.input_end_us >= now - kAutoSlackUs ? cs.input_end_us
                                                                  : std::max(now, cs.input_end_us);
  } else {
    if (pts_us < cs.input_end_us - tol)
      return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                           "pts_us " + std::to_string(pts_us) + " overlaps audio already queued on "
                           "this channel (up to " + std::to_string(cs.input_end_us) + ")");
    start = pts_us;
  }
  const int64_t end = start + SamplesToUs(count, rate);
  const int64_t ahead_limit = static_cast<int64_t>(client_->options.max_audio_ahead_ms) * 1000;
  if (end - now > ahead_limit)
    return Status::Error(NPC_ERR_BUFFER_FULL,
                         "audio would reach " + std::to_string((end - now) / 1000) +
                             " ms ahead of now; the limit is " + std::to_string(ahead_limit / 1000) +
                             " ms (push again later)");
  const bool contiguous = cs.resampler && cs.resampler->rate_in() == rate &&
                          std::llabs(start - cs.input_end_us) <= tol;
  if (!contiguous) {
    FlushRun(channel, &cs);
    cs.resampler = std::make_unique<detail::Resampler>(rate, kWireRate);
    cs.run_start_us = start;
    cs.run_out = 0;
  }
  Prune();  // also while reconnecting (no writer tick then): an outage must not grow the log
  std::vector<float> wire;
  wire.reserve(count * kWireRate / rate + 64);
  cs.resampler->Push(samples, count, &wire);
  cs.input_end_us = cs.run_start_us + SamplesToUs(cs.resampler->inputs(), rate);
  EmitWire(channel, &cs, wire);
  return Status::Ok();
}

Status PerformerCore::CheckEmotionName(const std::string& name) const {
  if (!facts_) return Status::Ok();  // not connected yet: the writer re-checks before sending
  auto has = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };
  if (has(facts_->tags) || has(facts_->presets) || has(npc_presets_)) return Status::Ok();
  std::string known;
  for (const auto& t : facts_->tags) known += (known.empty() ? "" : ", ") + t;
  return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                       "unknown emotion '" + name + "' (tags: " + known + "; or a preset)");
}

Status PerformerCore::SetEmotion(pb::Emotion emotion, float transition_s, int64_t pts_us) {
  if (!(transition_s >= 0.0f) || transition_s > 60.0f)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "transition_s must be 0..max_transition_s");
  if (pts_us != NPC_PTS_AUTO && pts_us < 0)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "pts_us is negative");
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_ || IsTerminal(state_))
    return Status::Error(NPC_ERR_NOT_STREAMING, "the performer is stopped or failed");
  if (facts_ && transition_s > facts_->max_transition_s)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                         "transition_s exceeds the server's " +
                             std::to_string(facts_->max_transition_s) + " s");
  if (emotion.has_tag()) {
    Status st = CheckEmotionName(emotion.tag().name());
    if (!st.ok()) return st;
  } else if (facts_ && emotion.weights().values_size() != static_cast<int>(facts_->tags.size())) {
    return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                         "expected " + std::to_string(facts_->tags.size()) + " emotion weights, got " +
                             std::to_string(emotion.weights().values_size()));
  }
  const int64_t now = NowUs();
  const int64_t pts = pts_us == NPC_PTS_AUTO ? std::max(now, last_cue_pts_) : pts_us;
  if (pts < last_cue_pts_)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "emotion pts goes backwards: " +
                                                       std::to_string(pts) + " < previous cue " +
                                                       std::to_string(last_cue_pts_));
  const size_t pending = std::count_if(log_.begin(), log_.end(), [&](const OutItem& i) {
    return i.kind != OutItem::kAudio && i.pts_us > now;
  });
  if (pending >= kMaxPendingCues)
    return Status::Error(NPC_ERR_BUFFER_FULL, "too many future emotion cues / lines queued");
  Prune();
  OutItem item;
  item.kind = OutItem::kEmotion;
  item.seq = next_seq_++;
  item.pts_us = item.end_us = pts;
  item.emotion = std::move(emotion);
  item.transition_s = transition_s;
  log_.push_back(std::move(item));
  last_cue_pts_ = pts;
  cv_.notify_all();
  return Status::Ok();
}

Status PerformerCore::MarkLine(const std::string& id, int64_t start, int64_t end,
                               const std::string& text) {
  if (id.empty() || id.size() > 127)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "line_id must be 1..127 characters");
  if (text.size() > 4096)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "line text is longer than 4096 bytes");
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_ || IsTerminal(state_))
    return Status::Error(NPC_ERR_NOT_STREAMING, "the performer is stopped or failed");
  const int64_t now = NowUs();
  if (start == NPC_PTS_AUTO) start = std::max(now, last_line_start_);
  if (start < 0) return Status::Error(NPC_ERR_INVALID_ARGUMENT, "start_pts_us is negative");
  if (end != NPC_PTS_NONE && end <= start)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "end_pts_us must be after start_pts_us");
  if (start < last_line_start_)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "line start goes backwards");
  Prune();
  OutItem item;
  item.kind = OutItem::kLine;
  item.seq = next_seq_++;
  item.pts_us = start;
  item.line_open_end = end == NPC_PTS_NONE;
  item.end_us = item.line_open_end ? INT64_MAX : end;
  item.line_id = id;
  item.text = text;
  log_.push_back(std::move(item));
  last_line_start_ = start;
  cv_.notify_all();
  return Status::Ok();
}

int64_t PerformerCore::PlaybackClockUs() {
  std::lock_guard<std::mutex> lock(mu_);
  return NowUs() - (have_started_ ? started_.latency_us() : 0);
}

Status PerformerCore::PopFrame(int64_t clock_us, npc_frame_info* info, uint8_t* dst,
                               size_t capacity, std::vector<uint8_t>* vec) {
  std::lock_guard<std::mutex> lock(mu_);
  if (clock_us == NPC_CLOCK_AUTO)
    clock_us = NowUs() - (have_started_ ? started_.latency_us() : 0);
  // The newest frame at or before the clock; NPC_CLOCK_LATEST takes the newest of all.
  int64_t pick = -1;
  if (clock_us == NPC_CLOCK_OLDEST) {
    if (!frames_.empty()) pick = 0;
  } else {
    for (size_t k = 0; k < frames_.size(); ++k)
      if (frames_[k].info.pts_us <= clock_us) pick = static_cast<int64_t>(k);
  }
  if (pick < 0) return Status{NPC_NO_FRAME, ""};
  QueuedFrame& f = frames_[static_cast<size_t>(pick)];
  if (info) CopyOut(f.info, info);
  if (vec) {
    *vec = std::move(f.payload);
  } else if (dst == nullptr || capacity < f.payload.size()) {
    return Status::Error(NPC_ERR_BUFFER_TOO_SMALL,
                         "frame payload is " + std::to_string(f.payload.size()) +
                             " bytes; the buffer holds " + std::to_string(dst ? capacity : 0));
  } else {
    std::memcpy(dst, f.payload.data(), f.payload.size());
  }
  frames_dropped_ += static_cast<uint64_t>(pick);  // older frames the clock skipped over
  frames_.erase(frames_.begin(), frames_.begin() + pick + 1);
  return Status::Ok();
}

Status PerformerCore::PollEvent(npc_event* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (events_.empty()) return Status{NPC_NO_EVENT, ""};
  CopyOut(events_.front(), out);
  events_.pop_front();
  return Status::Ok();
}

// ---- npc::Performer / Client::CreatePerformer ------------------------------------------------

namespace {
Status Closed() { return Status::Error(NPC_ERR_CLOSED, "the performer was destroyed"); }

bool ValidNpcId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}
}  // namespace

Status Client::CreatePerformer(const PerformerOptions& options, std::shared_ptr<Performer>* out) {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  if (core_->closed()) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  if (!ValidNpcId(options.npc_id))
    return Status::Error(NPC_ERR_INVALID_ARGUMENT,
                         "npc_id must be 1..64 characters of [A-Za-z0-9_-]");
  if (options.texture_format < NPC_TEXTURE_DEFAULT || options.texture_format > NPC_TEXTURE_RGBA8)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "unknown texture_format");
  if (!(options.initial_intensity >= 0.0f && options.initial_intensity <= 1.0f))
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "initial_intensity must be 0..1");
  auto core = std::make_shared<PerformerCore>(core_, options);
  core_->Register(core);
  if (core_->closed()) return Status::Error(NPC_ERR_CLOSED, "the client was destroyed");
  core->Start();
  *out = std::make_shared<Performer>(std::move(core));
  return Status::Ok();
}

Performer::Performer(std::shared_ptr<PerformerCore> core) : core_(std::move(core)) {}
Performer::~Performer() { Destroy(); }
void Performer::Destroy() { core_->Destroy(); }

Status Performer::Stop(bool immediate) {
  return core_->closed() ? Closed() : core_->Stop(immediate);
}
Status Performer::WaitStreaming(uint32_t timeout_ms) const {
  return core_->closed() ? Closed() : core_->WaitStreaming(timeout_ms);
}
Status Performer::GetStatus(npc_performer_status* out) const {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  if (core_->closed()) return Closed();
  core_->GetStatus(out);
  return Status::Ok();
}

Status Performer::PushAudioPcm16(npc_channel channel, const int16_t* samples, size_t count,
                                 uint32_t sample_rate, int64_t pts_us) {
  if (core_->closed()) return Closed();
  if (samples == nullptr && count > 0) return Status::Error(NPC_ERR_NULL_ARGUMENT, "samples is NULL");
  // Validated before converting: an absurd count must fail cleanly, not allocate terabytes.
  if (sample_rate < 8000 || sample_rate > 192000)
    return core_->PushAudio(channel, nullptr, 0, sample_rate, pts_us);  // the full message
  if (count > static_cast<size_t>(sample_rate) * 60)
    return Status::Error(NPC_ERR_OUT_OF_RANGE, "one push is limited to 60 s of audio");
  std::vector<float> f(count);
  for (size_t k = 0; k < count; ++k) f[k] = samples[k] / 32768.0f;
  return core_->PushAudio(channel, f.data(), count, sample_rate, pts_us);
}
Status Performer::PushAudioFloat(npc_channel channel, const float* samples, size_t count,
                                 uint32_t sample_rate, int64_t pts_us) {
  if (core_->closed()) return Closed();
  if (samples == nullptr && count > 0) return Status::Error(NPC_ERR_NULL_ARGUMENT, "samples is NULL");
  return core_->PushAudio(channel, samples, count, sample_rate, pts_us);
}
Status Performer::SetEmotion(const std::string& name, float intensity, float transition_s,
                             int64_t pts_us) {
  if (core_->closed()) return Closed();
  if (name.empty() || name.size() > 64)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "emotion name must be 1..64 characters");
  if (!(intensity >= 0.0f && intensity <= 1.0f))
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "intensity must be 0..1");
  pb::Emotion e;
  e.mutable_tag()->set_name(name);
  e.mutable_tag()->set_intensity(intensity);
  return core_->SetEmotion(std::move(e), transition_s, pts_us);
}
Status Performer::SetEmotionWeights(const std::vector<float>& weights, float transition_s,
                                    int64_t pts_us) {
  if (core_->closed()) return Closed();
  if (weights.empty() || weights.size() > 256)
    return Status::Error(NPC_ERR_INVALID_ARGUMENT, "need 1..256 emotion weights");
  pb::Emotion e;
  for (float w : weights) {
    if (!(w >= 0.0f && w <= 1.0f))
      return Status::Error(NPC_ERR_INVALID_ARGUMENT, "emotion weights must be 0..1");
    e.mutable_weights()->add_values(w);
  }
  return core_->SetEmotion(std::move(e), transition_s, pts_us);
}
Status Performer::MarkLine(const std::string& line_id, int64_t start_pts_us, int64_t end_pts_us,
                           const std::string& text) {
  return core_->closed() ? Closed() : core_->MarkLine(line_id, start_pts_us, end_pts_us, text);
}
int64_t Performer::TimelineUs() const { return core_->NowUs(); }
int64_t Performer::PlaybackClockUs() const { return core_->PlaybackClockUs(); }

Status Performer::PopFrame(int64_t clock_us, npc_frame_info* info, uint8_t* dst, size_t capacity) {
  return core_->closed() ? Closed() : core_->PopFrame(clock_us, info, dst, capacity, nullptr);
}
Status Performer::PopFrame(int64_t clock_us, Frame* out) {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  if (core_->closed()) return Closed();
  out->info.struct_size = sizeof(out->info);
  return core_->PopFrame(clock_us, &out->info, nullptr, 0, &out->payload);
}
Status Performer::PollEvent(npc_event* out) {
  if (out == nullptr) return Status::Error(NPC_ERR_NULL_ARGUMENT, "out is NULL");
  return core_->closed() ? Closed() : core_->PollEvent(out);
}

}  // namespace npc
