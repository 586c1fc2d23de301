// The NPC face component: streams the NPC's dialogue (an AudioSource's clips) and the player's
// microphone to the sidecar and shows the returned BC1 frames on a Texture2D.
//
// Thin on purpose: timing, buffering, reconnects and validation live in the native core; this
// component only moves Unity data in and out on the main thread (Update), so no callback ever
// runs on a bridge thread and no Unity API is touched off the main thread.
//
// Sync: the frame for audio pts p reaches the bridge about `latency` after p. The component
// therefore plays each dialogue clip `latency` late (AudioSource.PlayScheduled) and shows the
// frame for the playback clock (now - latency): lips and sound line up.
using System;
using Unity.Collections;
using Unity.Collections.LowLevel.Unsafe;
using UnityEngine;
using UnityEngine.Events;

namespace NpcRuntime.Bridge
{
    [Serializable] public class PerformerStateEvent : UnityEvent<PerformerState, string> { }
    [Serializable] public class LineEvent : UnityEvent<string, string> { }

    [AddComponentMenu("NPC Runtime/NPC Face")]
    public sealed class NpcFace : MonoBehaviour
    {
        [Tooltip("Connection settings asset shared by every NPC of the game.")]
        public NpcRuntimeSettings settings;

        [Tooltip("The NPC's id as registered with the sidecar (`npc-runtime npc add`).")]
        public string npcId = "";

        [Tooltip("Plays the dialogue lines (delayed by the stream latency).")]
        public AudioSource voice;

        [Tooltip("Renderer whose material shows the face; the texture goes to `textureProperty`.")]
        public Renderer targetRenderer;
        public string textureProperty = "_MainTex";

        [Tooltip("Feed the player's microphone as what the NPC hears (listening behaviour).")]
        public bool listenToMicrophone = false;
        [Tooltip("Microphone device name; empty = default.")]
        public string microphoneDevice = "";

        [Tooltip("Extra time (s) between pushing a line and its first sample, so the whole clip " +
                 "reaches the sidecar before its frames are due.")]
        public float scheduleMargin = 0.1f;

        public PerformerStateEvent onStateChanged = new PerformerStateEvent();
        public LineEvent onLineStarted = new LineEvent();
        public LineEvent onLineFinished = new LineEvent();

        public Texture2D Texture { get; private set; }
        public PerformerState State { get; private set; }

        NpcClient _client;
        NpcPerformer _performer;
        long _latencyUs;
        AudioClip _mic;
        int _micPos;
        float[] _micBuffer = new float[0];

        void OnEnable()
        {
            if (settings == null || string.IsNullOrEmpty(npcId))
            {
                Debug.LogError("NpcFace needs settings and an npcId", this);
                enabled = false;
                return;
            }
            _client = NpcBridgeConnections.Acquire(settings);
            _performer = _client.CreatePerformer(new PerformerOptions
            {
                NpcId = npcId, TextureFormat = settings.textureFormat,
                BottomUp = true,   // Unity textures start at the bottom row
            });
            if (listenToMicrophone) StartMicrophone();
        }

        void OnDisable()
        {
            if (_mic != null) Microphone.End(microphoneDevice);
            _mic = null;
            if (_performer != null) _performer.Dispose();
            _performer = null;
            if (_client != null) NpcBridgeConnections.Release(settings);
            _client = null;
        }

        /// <summary>Plays a dialogue line: the NPC says it, with its emotion keys and subtitle.</summary>
        public void PlayDialogueLine(DialogueLine line)
        {
            if (_performer == null || line == null || line.clip == null) return;
            float[] mono = Downmix(line.clip);
            long start = _performer.TimelineUs + (long)(scheduleMargin * 1e6);
            long end = start + (long)mono.Length * 1000000 / line.clip.frequency;
            NpcResult r = _performer.PushAudio(AudioChannel.Speak, mono, 0, mono.Length, line.clip.frequency, start);
            if (r != NpcResult.Ok)
            {
                Debug.LogWarning("NpcFace: line " + line.name + " refused: " + r + " " + NpcBridge.LastError(), this);
                return;
            }
            _performer.MarkLine(line.LineId, start, end, line.subtitle);
            foreach (EmotionKey k in line.SortedEmotions())
            {
                // A designer typo must not cost the line: log it, keep the other keys.
                try { _performer.SetEmotion(k.tag, k.intensity, k.blendSeconds, start + (long)(k.time * 1e6)); }
                catch (NpcBridgeException e) { Debug.LogWarning("NpcFace: " + line.name + ": " + e.Message, this); }
            }
            if (voice != null)
            {
                voice.clip = line.clip;
                double delay = (start - _performer.TimelineUs + _latencyUs) / 1e6;
                voice.PlayScheduled(AudioSettings.dspTime + Math.Max(0.0, delay));
            }
        }

        /// <summary>Changes the NPC's emotion now (a tag or preset), blending over blendSeconds.</summary>
        public void SetEmotion(string emotionTag, float intensity, float blendSeconds)
        {
            if (_performer == null) return;
            try { _performer.SetEmotion(emotionTag, intensity, blendSeconds); }
            catch (NpcBridgeException e) { Debug.LogWarning("NpcFace: " + e.Message, this); }
        }

        /// <summary>Player voice from any source (VOIP, a capture component): mono samples.</summary>
        public void PushPlayerVoice(float[] samples, int count, int sampleRate)
        {
            if (_performer != null) _performer.PushAudio(AudioChannel.Listen, samples, 0, count, sampleRate);
        }

        void StartMicrophone()
        {
            int minFreq, maxFreq;
            Microphone.GetDeviceCaps(microphoneDevice, out minFreq, out maxFreq);
            int rate = maxFreq == 0 ? 48000 : Mathf.Clamp(16000, minFreq, maxFreq);
            _mic = Microphone.Start(microphoneDevice, true, 1, rate);
            _micPos = 0;
        }

        void PumpMicrophone()
        {
            // Fixed 20 ms blocks: one reusable buffer (no per-frame garbage), and AUTO pts keep
            // the blocks contiguous on the LISTEN channel.
            int block = _mic.frequency / 50;
            if (_micBuffer.Length != block) _micBuffer = new float[block];
            int pos = Microphone.GetPosition(microphoneDevice);
            while ((pos - _micPos + _mic.samples) % _mic.samples >= block)
            {
                _mic.GetData(_micBuffer, _micPos);   // wraps around the looping clip by itself
                _performer.PushAudio(AudioChannel.Listen, _micBuffer, 0, block, _mic.frequency);
                _micPos = (_micPos + block) % _mic.samples;
            }
        }

        void Update()
        {
            if (_performer == null) return;
            BridgeEvent ev;
            while (_performer.TryPollEvent(out ev)) Handle(ev);
            if (_mic != null) PumpMicrophone();
            if (Texture != null) UploadDueFrame();
        }

        void Handle(BridgeEvent ev)
        {
            switch (ev.Kind)
            {
                case EventKind.StateChanged:
                    State = ev.State;
                    onStateChanged.Invoke(ev.State, ev.Message);
                    break;
                case EventKind.Started:
                    NativePerformerStatus s = _performer.Status;
                    _latencyUs = s.LatencyUs;
                    EnsureTexture((int)s.Width, (int)s.Height, (TextureFormat)s.TextureFormat);
                    break;
                case EventKind.LineStarted: onLineStarted.Invoke(ev.LineId, ev.Message); break;
                case EventKind.LineFinished: onLineFinished.Invoke(ev.LineId, ev.Message); break;
            }
        }

        void EnsureTexture(int width, int height, TextureFormat format)
        {
            var unityFormat = format == TextureFormat.RGBA8 ? UnityEngine.TextureFormat.RGBA32
                                                            : UnityEngine.TextureFormat.DXT1;
            if (Texture != null && Texture.width == width && Texture.height == height && Texture.format == unityFormat)
                return;
            if (Texture != null) Destroy(Texture);
            Texture = new Texture2D(width, height, unityFormat, false) { name = "NpcFace " + npcId };
            if (targetRenderer != null) targetRenderer.material.SetTexture(textureProperty, Texture);
        }

        unsafe void UploadDueFrame()
        {
            // The payload is copied once, straight into the texture's CPU memory; no decode.
            NativeArray<byte> raw = Texture.GetRawTextureData<byte>();
            FrameInfo info;
            NpcResult r = _performer.TryPopFrame(NpcBridgeNative.ClockAuto,
                (byte*)NativeArrayUnsafeUtility.GetUnsafePtr(raw), raw.Length, out info);
            if (r == NpcResult.Ok) Texture.Apply(false);
        }

        static float[] Downmix(AudioClip clip)
        {
            var data = new float[clip.samples * clip.channels];
            clip.GetData(data, 0);
            if (clip.channels == 1) return data;
            var mono = new float[clip.samples];
            for (int i = 0; i < clip.samples; i++)
            {
                float sum = 0f;
                for (int c = 0; c < clip.channels; c++) sum += data[i * clip.channels + c];
                mono[i] = sum / clip.channels;
            }
            return mono;
        }
    }
}
