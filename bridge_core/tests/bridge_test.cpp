// End-to-end tests of the bridge core against a real sidecar (started by
// tests/bridge/test_native_bridge.py, which passes its address and the test media).
//
//   npc_bridge_test flow      --target H:P --speak a.wav --listen b.wav --image face.png --dump DIR
//   npc_bridge_test reconnect --target H:P --speak a.wav --image face.png
//       prints "KILL_ME" when streaming; expects "RESTARTED" on stdin once the sidecar is back
//   npc_bridge_test baduse    --target H:P --image face.png --dead-target H:P2
//   npc_bridge_test idle      --target H:P --speak a.wav --image face.png   (max_audio_gap_s: 2)
//
// Each mode checks what an engine developer would notice, prints one "RESULT {json}" line for
// the Python side, and exits non-zero with the reason on the first failed check.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "npc_bridge.h"
#include "npc_bridge.hpp"

namespace {

using Clock = std::chrono::steady_clock;
std::map<std::string, std::string> g_args;

[[noreturn]] void Die(const std::string& why) {
  std::cout << "FAIL " << why << std::endl;
  std::exit(1);
}

#define CHECK(cond, msg)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::ostringstream os_;                                                            \
      os_ << __LINE__ << ": " << #cond << " -- " << msg;                                 \
      Die(os_.str());                                                                    \
    }                                                                                    \
  } while (0)

void CheckOk(const npc::Status& st, const char* what) {
  if (!st.ok()) Die(std::string(what) + ": " + npc_result_name(st.code) + " " + st.message);
}

void CheckCode(npc_result got, npc_result want, const char* what) {
  if (got != want)
    Die(std::string(what) + ": got " + npc_result_name(got) + " want " + npc_result_name(want) +
        " (" + npc_last_error() + ")");
}

std::string Arg(const std::string& k) {
  auto it = g_args.find(k);
  if (it == g_args.end()) Die("missing --" + k);
  return it->second;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  CHECK(f.good(), "cannot open " << path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

struct Wav {
  uint32_t rate = 0;
  std::vector<int16_t> samples;
  double seconds() const { return double(samples.size()) / rate; }
};

// Minimal RIFF reader for the test media (PCM16 mono, as espeak-ng writes it).
Wav ReadWav(const std::string& path) {
  std::vector<uint8_t> b = ReadFile(path);
  CHECK(b.size() > 44 && std::memcmp(b.data(), "RIFF", 4) == 0 && std::memcmp(b.data() + 8, "WAVE", 4) == 0,
        path << " is not a WAV file");
  Wav w;
  size_t p = 12;
  uint16_t channels = 0, bits = 0;
  while (p + 8 <= b.size()) {
    uint32_t len;
    std::memcpy(&len, &b[p + 4], 4);
    if (std::memcmp(&b[p], "fmt ", 4) == 0) {
      std::memcpy(&channels, &b[p + 10], 2);
      std::memcpy(&w.rate, &b[p + 12], 4);
      std::memcpy(&bits, &b[p + 22], 2);
    } else if (std::memcmp(&b[p], "data", 4) == 0) {
      len = std::min<uint32_t>(len, static_cast<uint32_t>(b.size() - p - 8));
      w.samples.resize(len / 2);
      std::memcpy(w.samples.data(), &b[p + 8], w.samples.size() * 2);
    }
    p += 8 + len + (len & 1);
  }
  CHECK(channels == 1 && bits == 16 && w.rate > 0 && !w.samples.empty(), path << ": need PCM16 mono");
  return w;
}

// First and last sample above -45 dBFS (the server's voice-activity threshold), in seconds.
std::pair<double, double> VoicedSpan(const Wav& w) {
  const int thr = static_cast<int>(32768 * std::pow(10.0, -45.0 / 20.0));
  size_t a = 0, b = w.samples.size();
  while (a < b && std::abs(w.samples[a]) < thr) ++a;
  while (b > a && std::abs(w.samples[b - 1]) < thr) --b;
  return {double(a) / w.rate, double(b) / w.rate};
}

int EmotionIndex(const npc_server_info& info, const std::string& tag) {
  std::stringstream ss(info.emotion_tags);
  std::string t;
  for (int i = 0; std::getline(ss, t, ','); ++i)
    if (t == tag) return i;
  Die("server has no emotion tag " + tag);
}

std::shared_ptr<npc::Client> Connect(const std::string& target) {
  npc::ClientOptions o;
  o.target = target;
  o.client_name = "npc_bridge_test";
  std::shared_ptr<npc::Client> c;
  CheckOk(npc::Client::Create(o, &c), "Client::Create");
  CheckOk(c->WaitReady(30000), "WaitReady");
  return c;
}

std::string RegisterFace(npc::Client& c, const std::string& id) {
  npc::RegisterNpcParams p;
  p.npc_id = id;
  p.display_name = "Bridge test " + id;
  p.images.push_back(ReadFile(Arg("image")));
  std::string got;
  npc::Status st = c.RegisterNpc(p, 30000, &got);
  if (st.code == NPC_ERR_ALREADY_EXISTS) return id;  // a rerun against a kept data dir
  CheckOk(st, "RegisterNpc");
  CHECK(got == id, "registered id " << got);
  return got;
}

std::vector<npc_event> DrainEvents(npc::Performer& p) {
  std::vector<npc_event> out;
  npc_event ev{};
  ev.struct_size = sizeof(ev);
  while (p.PollEvent(&ev).code == NPC_OK) out.push_back(ev);
  return out;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---- flow: SPEAK + LISTEN WAVs with emotion cues, >= 100 BC1 frames with pts on the audio --------

int Flow() {
  auto client = Connect(Arg("target"));
  npc_server_info info{};
  info.struct_size = sizeof(info);
  CheckOk(client->GetServerInfo(10000, &info), "GetServerInfo");
  const std::string id = RegisterFace(*client, "bridge_flow_npc");

  npc::PerformerOptions po;
  po.npc_id = id;
  po.texture_format = NPC_TEXTURE_BC1;
  po.seed = 7;
  std::shared_ptr<npc::Performer> perf;
  CheckOk(client->CreatePerformer(po, &perf), "CreatePerformer");
  CheckOk(perf->WaitStreaming(60000), "WaitStreaming");
  npc_performer_status st{};
  st.struct_size = sizeof(st);
  CheckOk(perf->GetStatus(&st), "GetStatus");
  const uint32_t expect_bytes = (st.width / 4) * (st.height / 4) * 8;
  CHECK(st.payload_bytes == expect_bytes, "payload_bytes " << st.payload_bytes);
  CHECK(st.width == info.width && st.height == info.height && st.fps == info.fps, "negotiated size");

  const Wav speak = ReadWav(Arg("speak")), listen = ReadWav(Arg("listen"));
  const int happy = EmotionIndex(info, "happy"), sad = EmotionIndex(info, "sad");
  // The NPC says its line first, then hears the player; both placed ahead on the timeline, as a
  // game that schedules a dialogue exchange does.
  const int64_t t_speak = perf->TimelineUs() + 300'000;
  const int64_t t_listen = t_speak + static_cast<int64_t>(speak.seconds() * 1e6) + 600'000;
  const int64_t t_end = t_listen + static_cast<int64_t>(listen.seconds() * 1e6);
  CheckOk(perf->SetEmotion("happy", 0.9f, 0.0f, t_speak), "SetEmotion happy");
  CheckOk(perf->MarkLine("greeting", t_speak, t_speak + static_cast<int64_t>(speak.seconds() * 1e6),
                         "Welcome, traveller."), "MarkLine");
  CheckOk(perf->PushAudioPcm16(NPC_CHANNEL_SPEAK, speak.samples.data(), speak.samples.size(),
                               speak.rate, t_speak), "push SPEAK");
  CheckOk(perf->SetEmotion("sad", 0.9f, 0.0f, t_listen), "SetEmotion sad");
  // LISTEN as a microphone delivers it: float blocks of 20 ms in real time, AUTO pts.
  std::vector<npc::Frame> frames;
  const size_t block = listen.rate / 50;
  size_t mic_pos = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    const int64_t now = perf->TimelineUs();
    while (now >= t_listen && mic_pos < listen.samples.size() &&
           t_listen + static_cast<int64_t>(mic_pos * 1e6 / listen.rate) <= now) {
      const size_t n = std::min(block, listen.samples.size() - mic_pos);
      std::vector<float> f(n);
      for (size_t k = 0; k < n; ++k) f[k] = listen.samples[mic_pos + k] / 32768.0f;
      CheckOk(perf->PushAudioFloat(NPC_CHANNEL_LISTEN, f.data(), n, listen.rate,
                                   mic_pos == 0 ? t_listen : NPC_PTS_AUTO), "push LISTEN");
      mic_pos += n;
    }
    npc::Frame fr;
    const npc::Status s = perf->PopFrame(NPC_CLOCK_OLDEST, &fr);  // every frame, in order
    if (s.ok()) frames.push_back(std::move(fr));
    else CHECK(s.code == NPC_NO_FRAME, npc_result_name(s.code) << " " << s.message);
    if (frames.size() >= 100 && !frames.empty() && frames.back().info.pts_us > t_end + 400'000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(frames.size() >= 100, "only " << frames.size() << " frames in 60 s");

  // Payloads, pts and sequence.
  const int64_t period = 1'000'000 / st.fps;
  for (size_t k = 0; k < frames.size(); ++k) {
    const npc_frame_info& i = frames[k].info;
    CHECK(i.format == NPC_TEXTURE_BC1 && i.width == st.width && i.height == st.height, "frame " << k);
    CHECK(frames[k].payload.size() == expect_bytes && i.payload_bytes == expect_bytes, "payload size");
    if (k > 0) {
      const npc_frame_info& prev = frames[k - 1].info;
      CHECK(i.pts_us > prev.pts_us, "pts not monotonic at " << k);
      CHECK(i.sequence == prev.sequence + 1, "the bridge lost a frame before " << k);
      // A loaded server may skip frames (FRAMES_DROPPED); pts must still sit exactly on the
      // frame grid of the audio timeline: pts = origin + index * period.
      CHECK(i.stream_index > prev.stream_index, "stream index not increasing at " << k);
      CHECK(std::llabs(i.pts_us - prev.pts_us -
                       int64_t(i.stream_index - prev.stream_index) * period) <= 1,
            "pts step " << i.pts_us - prev.pts_us << " for index step "
                        << i.stream_index - prev.stream_index);
    }
  }

  // pts match the audio: the server's voice activity per frame follows the WAVs where we put them.
  auto [s0, s1] = VoicedSpan(speak);
  auto [l0, l1] = VoicedSpan(listen);
  const int64_t sa = t_speak + int64_t(s0 * 1e6), sb = t_speak + int64_t(s1 * 1e6);
  const int64_t la = t_listen + int64_t(l0 * 1e6), lb = t_listen + int64_t(l1 * 1e6);
  const int64_t slack = 2 * period;  // VAD is per frame; resampling smears edges by < 1 ms
  int speak_in = 0, speak_on = 0, listen_in = 0, listen_on = 0, happy_ok = 0, happy_n = 0,
      sad_ok = 0, sad_n = 0, line_frames = 0;
  for (const auto& f : frames) {
    const int64_t t = f.info.pts_us;
    if (f.info.speaking) CHECK(t >= sa - slack && t <= sb + slack, "speaking at " << t << " outside SPEAK audio " << sa << ".." << sb);
    if (f.info.listening) CHECK(t >= la - slack && t <= lb + slack, "listening at " << t << " outside LISTEN audio " << la << ".." << lb);
    if (t >= sa && t < sb) { ++speak_in; speak_on += f.info.speaking; }
    if (t >= la && t < lb) { ++listen_in; listen_on += f.info.listening; }
    if (t >= t_speak + period && t < t_listen) { ++happy_n; happy_ok += f.info.emotion[happy] > 0.5f; }
    if (t >= t_listen + period) { ++sad_n; sad_ok += f.info.emotion[sad] > 0.5f; }
    line_frames += std::strcmp(f.info.line_id, "greeting") == 0;
  }
  CHECK(speak_in > 10 && speak_on * 2 > speak_in, "speaking in " << speak_on << "/" << speak_in);
  CHECK(listen_in > 10 && listen_on * 2 > listen_in, "listening in " << listen_on << "/" << listen_in);
  CHECK(happy_n > 5 && happy_ok == happy_n, "happy " << happy_ok << "/" << happy_n);
  CHECK(sad_n > 5 && sad_ok == sad_n, "sad " << sad_ok << "/" << sad_n);
  CHECK(line_frames > 10, "line frames " << line_frames);

  auto events = DrainEvents(*perf);
  int applied = 0, line_started = 0, line_finished = 0;
  for (const auto& e : events) {
    applied += e.kind == NPC_EVENT_EMOTION_APPLIED;
    line_started += e.kind == NPC_EVENT_LINE_STARTED && std::strcmp(e.line_id, "greeting") == 0;
    line_finished += e.kind == NPC_EVENT_LINE_FINISHED && std::strcmp(e.line_id, "greeting") == 0;
  }
  CHECK(applied >= 2 && line_started == 1 && line_finished == 1,
        "events: applied " << applied << " line " << line_started << "/" << line_finished);

  // Popping by the audio clock: let frames queue, then the engine's clock picks the newest due
  // frame (not a future one, not a stale one) and everything older is discarded.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t clock = perf->PlaybackClockUs();
  npc::Frame due;
  CheckOk(perf->PopFrame(clock, &due), "PopFrame(clock)");
  CHECK(due.info.pts_us <= clock, "clock " << clock << " picked future pts " << due.info.pts_us);
  npc::Frame again;
  CHECK(perf->PopFrame(due.info.pts_us, &again).code == NPC_NO_FRAME, "older frames not discarded");
  if (perf->PopFrame(NPC_CLOCK_OLDEST, &again).ok())  // whatever is left is not yet due
    CHECK(again.info.pts_us > clock, "a due frame " << again.info.pts_us << " was left behind");

  // Dump three payloads for the independent BC1 decoder on the Python side.
  const std::string dump = Arg("dump");
  for (size_t k : {size_t(0), frames.size() / 2, frames.size() - 1}) {
    std::ofstream out(dump + "/frame_" + std::to_string(k) + ".bc1", std::ios::binary);
    out.write(reinterpret_cast<const char*>(frames[k].payload.data()), frames[k].payload.size());
  }
  CheckOk(perf->Stop(false), "Stop");
  const auto stop_deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < stop_deadline) {
    CheckOk(perf->GetStatus(&st), "GetStatus");
    if (st.state == NPC_PERFORMER_STOPPED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(st.state == NPC_PERFORMER_STOPPED, "state after Stop: " << st.state);
  perf->Destroy();
  client->Shutdown();
  std::cout << "RESULT {\"frames\": " << frames.size() << ", \"width\": " << st.width
            << ", \"height\": " << st.height << ", \"payload_bytes\": " << expect_bytes
            << ", \"first_pts_us\": " << frames.front().info.pts_us
            << ", \"last_pts_us\": " << frames.back().info.pts_us
            << ", \"speaking_frames\": " << speak_on << ", \"listening_frames\": " << listen_on
            << ", \"latency_us\": " << st.latency_us << "}" << std::endl;
  return 0;
}

// ---- reconnect: SIGKILL mid-stream, restart; frames resume with no engine call ------------------

int Reconnect() {
  auto client = Connect(Arg("target"));
  const std::string id = RegisterFace(*client, "bridge_reconnect_npc");
  const Wav speak = ReadWav(Arg("speak"));
  npc::PerformerOptions po;
  po.npc_id = id;
  std::shared_ptr<npc::Performer> perf;
  CheckOk(client->CreatePerformer(po, &perf), "CreatePerformer");
  CheckOk(perf->WaitStreaming(60000), "WaitStreaming");

  // The "engine": pushes its dialogue audio in real time and pops frames. It never reconnects,
  // restarts or even looks at the state: that is the bridge's job.
  std::atomic<bool> done{false};
  std::thread feeder([&] {
    size_t pos = 0;
    const size_t block = speak.rate / 10;
    const int64_t t0 = perf->TimelineUs();
    int64_t sent_us = 0;
    while (!done) {
      if (perf->TimelineUs() - t0 + 200'000 > sent_us) {
        const size_t n = std::min(block, speak.samples.size() - pos);
        perf->PushAudioPcm16(NPC_CHANNEL_SPEAK, speak.samples.data() + pos, n, speak.rate);
        pos = (pos + n) % speak.samples.size();
        sent_us += static_cast<int64_t>(n * 1e6 / speak.rate);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  std::vector<npc::Frame> before, after;
  auto pop_until = [&](std::vector<npc::Frame>* into, size_t n, int seconds, int64_t min_pts) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (into->size() < n && Clock::now() < deadline) {
      npc::Frame f;
      if (perf->PopFrame(NPC_CLOCK_LATEST, &f).ok() && f.info.pts_us > min_pts) {
        if (into->empty()) into->reserve(n);
        into->push_back(std::move(f));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  pop_until(&before, 25, 30, INT64_MIN);
  CHECK(before.size() == 25, "frames before the kill: " << before.size());
  DrainEvents(*perf);

  std::cout << "KILL_ME" << std::endl;  // the harness SIGKILLs the sidecar and restarts it
  std::string line;
  CHECK(std::getline(std::cin, line) && line == "RESTARTED", "harness said '" << line << "'");
  const auto restarted = Clock::now();
  const int64_t restarted_us = perf->TimelineUs();
  const int64_t last_before = before.back().info.pts_us;
  // Frames from the old stream still in flight are not "resumed": wait for the new stream's.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  Clock::time_point first_new{};
  while (Clock::now() < deadline) {
    npc::Frame f;
    if (perf->PopFrame(NPC_CLOCK_LATEST, &f).ok()) {
      npc_performer_status st{};
      st.struct_size = sizeof(st);
      perf->GetStatus(&st);
      if (st.reconnects >= 1 && f.info.pts_us > last_before) {
        first_new = Clock::now();
        after.push_back(std::move(f));
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(!after.empty(), "no frames within 20 s of the restart");
  const double resume_ms = Ms(first_new - restarted);
  pop_until(&after, 50, 20, last_before);
  done = true;
  feeder.join();
  CHECK(after.size() == 50, "frames after the restart: " << after.size());

  int speaking_after = 0;
  for (size_t k = 0; k < after.size(); ++k) {
    CHECK(after[k].payload.size() == after[k].info.payload_bytes && after[k].info.payload_bytes > 0, "payload");
    if (k) CHECK(after[k].info.pts_us > after[k - 1].info.pts_us, "pts monotonic after reconnect");
    speaking_after += after[k].info.speaking;
  }
  CHECK(after.front().info.pts_us > last_before, "pts continue across the reconnect");
  CHECK(speaking_after > 10, "audio reaches the new stream: speaking " << speaking_after << "/50");
  auto events = DrainEvents(*perf);
  bool saw_reconnecting = false, saw_streaming = false;
  int64_t streaming_at_us = 0;
  for (const auto& e : events) {
    if (e.kind == NPC_EVENT_STATE_CHANGED && e.state == NPC_PERFORMER_RECONNECTING) saw_reconnecting = true;
    if (e.kind == NPC_EVENT_STATE_CHANGED && e.state == NPC_PERFORMER_STREAMING && saw_reconnecting) {
      saw_streaming = true;
      streaming_at_us = e.pts_us;
    }
  }
  CHECK(saw_reconnecting && saw_streaming, "state events RECONNECTING -> STREAMING");
  CHECK(resume_ms < 2000.0, "frames resumed " << resume_ms << " ms after the restart");
  npc_performer_status st{};
  st.struct_size = sizeof(st);
  perf->GetStatus(&st);
  perf->Destroy();
  client->Shutdown();
  std::cout << "RESULT {\"resume_ms\": " << resume_ms << ", \"reconnects\": " << st.reconnects
            << ", \"gap_us\": " << after.front().info.pts_us - last_before
            << ", \"stream_reopened_ms\": " << (streaming_at_us - restarted_us) / 1000.0
            << ", \"speaking_after\": " << speaking_after << "}" << std::endl;
  return 0;
}

// ---- idle: a line after a long silence is still accepted ------------------------------------------
// Run against a sidecar whose max_audio_gap_s is 2: after 5 s without audio, a line pushed "now"
// lies more than the gap after the channel's last audio. The bridge's keep-alive silence must
// have kept the channel within the gap, or the server ends the stream with INVALID_ARGUMENT.

int Idle() {
  auto client = Connect(Arg("target"));
  const std::string id = RegisterFace(*client, "bridge_idle_npc");
  npc::PerformerOptions po;
  po.npc_id = id;
  std::shared_ptr<npc::Performer> perf;
  CheckOk(client->CreatePerformer(po, &perf), "CreatePerformer");
  CheckOk(perf->WaitStreaming(60000), "WaitStreaming");
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const Wav speak = ReadWav(Arg("speak"));
  const int64_t t0 = perf->TimelineUs();
  CheckOk(perf->PushAudioPcm16(NPC_CHANNEL_SPEAK, speak.samples.data(), speak.samples.size(), speak.rate),
          "push after silence");
  int speaking = 0, frames = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    npc::Frame f;
    if (perf->PopFrame(NPC_CLOCK_OLDEST, &f).ok() && f.info.pts_us >= t0) {
      ++frames;
      speaking += f.info.speaking;
      if (f.info.pts_us > t0 + static_cast<int64_t>(speak.seconds() * 1e6)) break;
    }
    npc_performer_status st{};
    st.struct_size = sizeof(st);
    perf->GetStatus(&st);
    CHECK(st.state == NPC_PERFORMER_STREAMING, "stream ended: state " << st.state << " error "
                                                   << npc_result_name(st.error));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(speaking > 10, "the line after the silence was not rendered: speaking " << speaking << "/" << frames);
  perf->Destroy();
  client->Shutdown();
  std::cout << "RESULT {\"speaking_after_idle\": " << speaking << ", \"frames\": " << frames << "}" << std::endl;
  return 0;
}

// ---- bad use, through the C ABI as an engine script would call it -------------------------------

int BadUse() {
  // Server absent at start: everything is accepted, nothing connects, nothing blocks forever.
  npc_client_config cfg;
  npc_client_config_init(&cfg);
  const std::string dead = Arg("dead-target");
  cfg.target = dead.c_str();
  npc_client_t dead_client = 0;
  CheckCode(npc_client_create(&cfg, &dead_client), NPC_OK, "create without server");
  npc_performer_config pc;
  npc_performer_config_init(&pc);
  pc.npc_id = "nobody_home";
  npc_performer_t ghost = 0;
  CheckCode(npc_performer_create(dead_client, &pc, &ghost), NPC_OK, "performer without server");
  CheckCode(npc_client_wait_ready(dead_client, 300), NPC_ERR_DEADLINE_EXCEEDED, "wait_ready");
  npc_server_info info{};
  info.struct_size = sizeof(info);
  const npc_result r = npc_client_get_server_info(dead_client, 300, &info);
  CHECK(r == NPC_ERR_UNAVAILABLE || r == NPC_ERR_DEADLINE_EXCEEDED, npc_result_name(r));
  CheckCode(npc_performer_wait_streaming(ghost, 500), NPC_ERR_DEADLINE_EXCEEDED, "wait_streaming");
  npc_performer_status st{};
  st.struct_size = sizeof(st);
  CheckCode(npc_performer_get_status(ghost, &st), NPC_OK, "status");
  CHECK(st.state == NPC_PERFORMER_CONNECTING, "state " << st.state);
  std::vector<int16_t> tone(1600, 1000);
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, NPC_PTS_AUTO),
            NPC_OK, "audio is queued while connecting");
  npc_frame_info fi{};
  fi.struct_size = sizeof(fi);
  CheckCode(npc_performer_pop_frame(ghost, NPC_CLOCK_LATEST, &fi, nullptr, 0), NPC_NO_FRAME, "no frame yet");

  // Null and oversized buffers, bad values.
  CheckCode(npc_client_create(&cfg, nullptr), NPC_ERR_NULL_ARGUMENT, "create(NULL out)");
  npc_client_config tiny{};  // struct_size 0: the caller did not init the struct
  npc_client_t unused = 0;
  CheckCode(npc_client_create(&tiny, &unused), NPC_ERR_INVALID_ARGUMENT, "uninitialised config");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, nullptr, 100, 16000, NPC_PTS_AUTO),
            NPC_ERR_NULL_ARGUMENT, "NULL samples");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), size_t(1) << 40, 16000, NPC_PTS_AUTO),
            NPC_ERR_OUT_OF_RANGE, "oversized push");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 0, NPC_PTS_AUTO),
            NPC_ERR_INVALID_ARGUMENT, "rate 0");
  CheckCode(npc_performer_push_audio_pcm16(ghost, static_cast<npc_channel>(7), tone.data(), tone.size(), 16000, NPC_PTS_AUTO),
            NPC_ERR_INVALID_ARGUMENT, "bad channel");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, -5),
            NPC_ERR_INVALID_ARGUMENT, "negative pts");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, 0),
            NPC_ERR_INVALID_ARGUMENT, "pts overlapping queued audio");
  std::vector<int16_t> minute(16000 * 40, 0);  // 40 s at once: beyond the 30 s look-ahead bound
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_LISTEN, minute.data(), minute.size(), 16000, NPC_PTS_AUTO),
            NPC_ERR_BUFFER_FULL, "audio too far ahead");
  CheckCode(npc_performer_set_emotion(ghost, nullptr, 1, 0, NPC_PTS_AUTO), NPC_ERR_NULL_ARGUMENT, "NULL emotion");
  CheckCode(npc_performer_set_emotion(ghost, "happy", 2.0f, 0, NPC_PTS_AUTO), NPC_ERR_INVALID_ARGUMENT, "intensity 2");
  CheckCode(npc_performer_set_emotion(ghost, "happy", NAN, 0, NPC_PTS_AUTO), NPC_ERR_INVALID_ARGUMENT, "intensity NaN");
  CheckCode(npc_performer_set_emotion_weights(ghost, nullptr, 3, 0, NPC_PTS_AUTO), NPC_ERR_NULL_ARGUMENT, "NULL weights");
  CheckCode(npc_performer_mark_line(ghost, "", 0, NPC_PTS_NONE, "x"), NPC_ERR_INVALID_ARGUMENT, "empty line id");
  CheckCode(npc_performer_mark_line(ghost, nullptr, 0, NPC_PTS_NONE, "x"), NPC_ERR_NULL_ARGUMENT, "NULL line id");
  CheckCode(npc_performer_pop_frame(ghost, NPC_CLOCK_LATEST, nullptr, nullptr, 0), NPC_ERR_NULL_ARGUMENT, "NULL info");
  CheckCode(npc_performer_pop_frame(ghost, NPC_CLOCK_LATEST, &fi, nullptr, 64), NPC_ERR_NULL_ARGUMENT, "NULL dst");
  npc_performer_config bad = pc;
  bad.npc_id = "spaces are not allowed";
  npc_performer_t nope = 0;
  CheckCode(npc_performer_create(dead_client, &bad, &nope), NPC_ERR_INVALID_ARGUMENT, "bad npc id");
  bad.npc_id = nullptr;
  CheckCode(npc_performer_create(dead_client, &bad, &nope), NPC_ERR_INVALID_ARGUMENT, "NULL npc id");
  npc_register_params rp{};
  rp.struct_size = sizeof(rp);
  CheckCode(npc_client_register_npc(dead_client, nullptr, 100, nullptr, 0), NPC_ERR_NULL_ARGUMENT, "NULL params");
  rp.image_count = 2;
  CheckCode(npc_client_register_npc(dead_client, &rp, 100, nullptr, 0), NPC_ERR_NULL_ARGUMENT, "NULL images");

  // Against the live server: unknown NPC, unknown emotion, a too-small texture buffer.
  npc_client_config live_cfg;
  npc_client_config_init(&live_cfg);
  const std::string target = Arg("target");
  live_cfg.target = target.c_str();
  npc_client_t client = 0;
  CheckCode(npc_client_create(&live_cfg, &client), NPC_OK, "create");
  CheckCode(npc_client_wait_ready(client, 30000), NPC_OK, "wait_ready");
  npc_performer_config uc;
  npc_performer_config_init(&uc);
  uc.npc_id = "no_such_npc_anywhere";
  npc_performer_t unknown = 0;
  CheckCode(npc_performer_create(client, &uc, &unknown), NPC_OK, "create for unknown NPC");
  CheckCode(npc_performer_wait_streaming(unknown, 20000), NPC_ERR_NOT_FOUND, "unknown NPC");
  CHECK(std::strstr(npc_last_error(), "no_such_npc_anywhere") != nullptr, "message names the NPC: " << npc_last_error());
  CheckCode(npc_performer_get_status(unknown, &st), NPC_OK, "status");
  CHECK(st.state == NPC_PERFORMER_FAILED && st.error == NPC_ERR_NOT_FOUND, "failed state " << st.state);
  CheckCode(npc_performer_push_audio_pcm16(unknown, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, NPC_PTS_AUTO),
            NPC_ERR_NOT_STREAMING, "push to a failed performer");

  std::vector<uint8_t> png = ReadFile(Arg("image"));
  npc_image img{png.data(), png.size()};
  npc_register_params reg{};
  reg.struct_size = sizeof(reg);
  reg.npc_id = "bridge_baduse_npc";
  reg.images = &img;
  reg.image_count = 1;
  char idbuf[64];
  const npc_result rr = npc_client_register_npc(client, &reg, 30000, idbuf, sizeof(idbuf));
  CHECK(rr == NPC_OK || rr == NPC_ERR_ALREADY_EXISTS, npc_result_name(rr) << " " << npc_last_error());
  CheckCode(npc_client_register_npc(client, &reg, 30000, idbuf, sizeof(idbuf)), NPC_ERR_ALREADY_EXISTS, "duplicate id");
  npc_performer_config gc;
  npc_performer_config_init(&gc);
  gc.npc_id = "bridge_baduse_npc";
  npc_performer_t good = 0;
  CheckCode(npc_performer_create(client, &gc, &good), NPC_OK, "create");
  CheckCode(npc_performer_wait_streaming(good, 60000), NPC_OK, "streaming");
  CheckCode(npc_performer_set_emotion(good, "no_such_feeling", 1, 0, NPC_PTS_AUTO), NPC_ERR_INVALID_ARGUMENT,
            "unknown emotion is refused before it can break the stream");
  float three[3] = {0, 1, 0};
  CheckCode(npc_performer_set_emotion_weights(good, three, 3, 0, NPC_PTS_AUTO), NPC_ERR_INVALID_ARGUMENT, "weight count");
  CheckCode(npc_performer_set_emotion(good, "angry", 0.5f, 0.2f, NPC_PTS_AUTO), NPC_OK, "valid emotion");
  uint8_t small[16];
  npc_result pr = NPC_NO_FRAME;
  for (int k = 0; k < 300 && pr == NPC_NO_FRAME; ++k) {
    pr = npc_performer_pop_frame(good, NPC_CLOCK_LATEST, &fi, small, sizeof(small));
    if (pr == NPC_NO_FRAME) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CheckCode(pr, NPC_ERR_BUFFER_TOO_SMALL, "small texture buffer");
  CHECK(fi.payload_bytes > sizeof(small), "size reported " << fi.payload_bytes);
  std::vector<uint8_t> tex(fi.payload_bytes);
  CheckCode(npc_performer_pop_frame(good, NPC_CLOCK_LATEST, &fi, tex.data(), tex.size()), NPC_OK,
            "the frame was not consumed by the failed pop");
  CheckCode(npc_performer_get_status(good, &st), NPC_OK, "status");
  CHECK(st.state == NPC_PERFORMER_STREAMING, "bad calls did not break the stream: " << st.state);

  // Calls after shutdown, double destroy, handles never issued.
  CheckCode(npc_performer_destroy(good), NPC_OK, "destroy");
  CheckCode(npc_performer_destroy(good), NPC_ERR_CLOSED, "double destroy");
  CheckCode(npc_performer_push_audio_pcm16(good, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, NPC_PTS_AUTO),
            NPC_ERR_CLOSED, "push after destroy");
  CheckCode(npc_performer_pop_frame(good, NPC_CLOCK_LATEST, &fi, tex.data(), tex.size()), NPC_ERR_CLOSED, "pop after destroy");
  CheckCode(npc_performer_stop(123456789, 0), NPC_ERR_BAD_HANDLE, "handle never issued");
  CheckCode(npc_performer_stop(0, 0), NPC_ERR_BAD_HANDLE, "handle 0");
  CheckCode(npc_client_destroy(client), NPC_OK, "client destroy (also destroys 'unknown')");
  CheckCode(npc_performer_get_status(unknown, &st), NPC_ERR_CLOSED, "performer of a destroyed client");
  CheckCode(npc_client_wait_ready(client, 10), NPC_ERR_CLOSED, "client after destroy");
  CheckCode(npc_client_destroy(client), NPC_ERR_CLOSED, "client double destroy");
  CheckCode(npc_bridge_shutdown_all(), NPC_OK, "shutdown_all with live handles");
  CheckCode(npc_performer_push_audio_pcm16(ghost, NPC_CHANNEL_SPEAK, tone.data(), tone.size(), 16000, NPC_PTS_AUTO),
            NPC_ERR_CLOSED, "push after shutdown_all");
  CheckCode(npc_client_get_state(dead_client, nullptr), NPC_ERR_NULL_ARGUMENT, "NULL out");
  npc_connection_state cs;
  CheckCode(npc_client_get_state(dead_client, &cs), NPC_ERR_CLOSED, "client after shutdown_all");
  CHECK(std::string(npc_result_name(NPC_ERR_CLOSED)) == "NPC_ERR_CLOSED", "names");
  std::cout << "RESULT {\"bad_use_checks\": \"ok\"}" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: npc_bridge_test flow|reconnect|baduse --key value ...");
  for (int k = 2; k + 1 < argc; k += 2) {
    std::string key = argv[k];
    if (key.rfind("--", 0) != 0) Die("bad argument " + key);
    g_args[key.substr(2)] = argv[k + 1];
  }
  const std::string mode = argv[1];
  if (mode == "flow") return Flow();
  if (mode == "reconnect") return Reconnect();
  if (mode == "baduse") return BadUse();
  if (mode == "idle") return Idle();
  if (mode == "leak-canary") {
    // Leaks on purpose: the harness checks that a sanitizer build reports it, which proves that
    // a clean sanitizer run of the other modes means something.
    static volatile char* leaked;
    leaked = new char[4096];
    leaked[0] = 1;
    leaked = nullptr;
    return 0;
  }
  Die("unknown mode " + mode);
}
