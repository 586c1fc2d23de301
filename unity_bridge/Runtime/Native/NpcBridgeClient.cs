// Plain C# client over the C ABI: NpcClient (one sidecar connection) and NpcPerformer (one NPC's
// live stream). No UnityEngine here: the Unity components (Runtime/*.cs) use these classes, and
// the Mono test in tests/bridge/csharp drives them outside Unity.
//
// Control calls (create, register, set emotion, ...) throw NpcBridgeException with the native
// result code and message. Per-frame calls (TryPopFrame, TryPollEvent, PushAudio) return codes
// instead, because a game loop must not pay for exceptions 60 times a second.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace NpcRuntime.Bridge
{
    public sealed class NpcBridgeException : Exception
    {
        public readonly NpcResult Result;

        public NpcBridgeException(NpcResult result, string message)
            : base(NpcBridge.ResultName(result) + ": " + message) { Result = result; }
    }

    public static class NpcBridge
    {
        public static string ResultName(NpcResult r)
        {
            return Marshal.PtrToStringAnsi(NpcBridgeNative.npc_result_name((int)r));
        }

        public static string LastError()
        {
            return Marshal.PtrToStringAnsi(NpcBridgeNative.npc_last_error()) ?? "";
        }

        public static string Version()
        {
            return Marshal.PtrToStringAnsi(NpcBridgeNative.npc_bridge_version());
        }

        /// <summary>Destroys every native client and performer (editor domain reload, quit).</summary>
        public static void ShutdownAll() { NpcBridgeNative.npc_bridge_shutdown_all(); }

        internal static void Check(NpcResult r)
        {
            if (r != NpcResult.Ok) throw new NpcBridgeException(r, LastError());
        }

        internal static unsafe string FixedString(byte* p, int capacity)
        {
            int n = 0;
            while (n < capacity && p[n] != 0) n++;
            return Encoding.UTF8.GetString(p, n);
        }

        /// <summary>NUL-terminated UTF-8 copy in unmanaged memory; free with FreeUtf8.</summary>
        internal static IntPtr Utf8(string s)
        {
            if (s == null) return IntPtr.Zero;
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            return p;
        }

        internal static void FreeUtf8(IntPtr p)
        {
            if (p != IntPtr.Zero) Marshal.FreeHGlobal(p);
        }
    }

    public sealed class ClientOptions
    {
        public string Target = "127.0.0.1:50051";
        public bool UseTls = false;
        public string TlsRootCertsPem = null;
        public string ClientName = "csharp";
        public uint ReconnectMinMs = 100;
        public uint ReconnectMaxMs = 500;
        public uint FrameQueueCapacity = 32;
        public uint MaxAudioAheadMs = 30000;
    }

    public sealed class ServerInfo
    {
        public uint ProtocolVersion, Fps, Width, Height, ChunkFrames, ModelSampleRate;
        public long LatencyUs;
        public string ServerVersion, ModelName, ModelConfig;
        public string[] EmotionTags;
    }

    public sealed class PerformerOptions
    {
        public string NpcId;
        public TextureFormat TextureFormat = TextureFormat.BC1;
        /// <summary>Rows bottom-to-top, Unity's texture origin.</summary>
        public bool BottomUp = false;
        public ulong Seed = 0;
        public bool TakeOver = false;
        public string InitialEmotion = null;
        public float InitialIntensity = 1f;
    }

    public struct FrameInfo
    {
        public ulong Sequence, StreamIndex;
        public long PtsUs;
        public TextureFormat Format;
        public int Width, Height, PayloadBytes;
        public bool Speaking, Listening;
        public float[] Emotion;   // filled only by TryPopFrame(..., withEmotion: true)
        public string LineId;
    }

    public struct BridgeEvent
    {
        public EventKind Kind;
        public PerformerState State;
        public NpcResult Error;
        public long PtsUs, DurationUs;
        public uint FrameCount;
        public string LineId, Message;
    }

    /// <summary>One connection to the sidecar; every performer created from it shares it.</summary>
    public sealed class NpcClient : IDisposable
    {
        ulong _handle;

        public NpcClient(ClientOptions options)
        {
            if (NpcBridgeNative.npc_bridge_abi_version() != NpcBridgeNative.AbiVersion)
                throw new NpcBridgeException(NpcResult.Internal, "native npc_bridge ABI " +
                    NpcBridgeNative.npc_bridge_abi_version() + " != " + NpcBridgeNative.AbiVersion);
            var c = new NativeClientConfig();
            NpcBridgeNative.npc_client_config_init(ref c);
            c.Target = NpcBridge.Utf8(options.Target);
            c.UseTls = options.UseTls ? 1 : 0;
            c.TlsRootCertsPem = NpcBridge.Utf8(options.TlsRootCertsPem);
            c.ClientName = NpcBridge.Utf8(options.ClientName);
            c.ReconnectMinMs = options.ReconnectMinMs;
            c.ReconnectMaxMs = options.ReconnectMaxMs;
            c.FrameQueueCapacity = options.FrameQueueCapacity;
            c.MaxAudioAheadMs = options.MaxAudioAheadMs;
            try { NpcBridge.Check(NpcBridgeNative.npc_client_create(ref c, out _handle)); }
            finally
            {
                NpcBridge.FreeUtf8(c.Target);
                NpcBridge.FreeUtf8(c.TlsRootCertsPem);
                NpcBridge.FreeUtf8(c.ClientName);
            }
        }

        public ulong Handle { get { return _handle; } }

        public ConnectionState State
        {
            get
            {
                ConnectionState s;
                return NpcBridgeNative.npc_client_get_state(_handle, out s) == NpcResult.Ok ? s : ConnectionState.Shutdown;
            }
        }

        /// <summary>True once connected; false after the timeout. Blocks: not on the game thread.</summary>
        public bool WaitReady(uint timeoutMs)
        {
            NpcResult r = NpcBridgeNative.npc_client_wait_ready(_handle, timeoutMs);
            if (r == NpcResult.DeadlineExceeded) return false;
            NpcBridge.Check(r);
            return true;
        }

        public unsafe ServerInfo GetServerInfo(uint timeoutMs)
        {
            var n = new NativeServerInfo();
            n.StructSize = (uint)sizeof(NativeServerInfo);
            NpcBridge.Check(NpcBridgeNative.npc_client_get_server_info(_handle, timeoutMs, ref n));
            string tags = NpcBridge.FixedString(n.EmotionTags, 512);
            return new ServerInfo
            {
                ProtocolVersion = n.ProtocolVersion, Fps = n.Fps, Width = n.Width, Height = n.Height,
                ChunkFrames = n.ChunkFrames, ModelSampleRate = n.ModelSampleRate, LatencyUs = n.LatencyUs,
                ServerVersion = NpcBridge.FixedString(n.ServerVersion, 32),
                ModelName = NpcBridge.FixedString(n.ModelName, 64),
                ModelConfig = NpcBridge.FixedString(n.ModelConfig, 32),
                EmotionTags = tags.Length == 0 ? new string[0] : tags.Split(','),
            };
        }

        /// <summary>Registers an NPC from 1..4 PNG/JPEG reference images; returns its id.</summary>
        public unsafe string RegisterNpc(string npcId, string displayName, byte[][] images,
                                         string defaultEmotion = null, float defaultIntensity = 1f,
                                         uint timeoutMs = 30000)
        {
            if (images == null) throw new ArgumentNullException("images");
            var handles = new GCHandle[images.Length];
            var natives = new NativeImage[images.Length];
            var p = new NativeRegisterParams();
            try
            {
                for (int i = 0; i < images.Length; i++)
                {
                    handles[i] = GCHandle.Alloc(images[i], GCHandleType.Pinned);
                    natives[i].Data = handles[i].AddrOfPinnedObject();
                    natives[i].Size = (UIntPtr)images[i].Length;
                }
                p.StructSize = (uint)Marshal.SizeOf(typeof(NativeRegisterParams));
                p.NpcId = NpcBridge.Utf8(npcId);
                p.DisplayName = NpcBridge.Utf8(displayName);
                p.DefaultEmotion = NpcBridge.Utf8(defaultEmotion);
                p.DefaultIntensity = defaultIntensity;
                p.ImageCount = (UIntPtr)images.Length;
                byte* id = stackalloc byte[128];
                fixed (NativeImage* imgs = natives)
                {
                    p.Images = (IntPtr)imgs;
                    NpcBridge.Check(NpcBridgeNative.npc_client_register_npc(_handle, ref p, timeoutMs, id, (UIntPtr)128));
                }
                return NpcBridge.FixedString(id, 128);
            }
            finally
            {
                foreach (var h in handles) if (h.IsAllocated) h.Free();
                NpcBridge.FreeUtf8(p.NpcId);
                NpcBridge.FreeUtf8(p.DisplayName);
                NpcBridge.FreeUtf8(p.DefaultEmotion);
            }
        }

        public void DeleteNpc(string npcId, uint timeoutMs = 10000)
        {
            IntPtr id = NpcBridge.Utf8(npcId);
            try { NpcBridge.Check(NpcBridgeNative.npc_client_delete_npc(_handle, id, timeoutMs)); }
            finally { NpcBridge.FreeUtf8(id); }
        }

        /// <summary>Starts streaming in the background; returns at once (see Performer.State).</summary>
        public NpcPerformer CreatePerformer(PerformerOptions options)
        {
            var c = new NativePerformerConfig();
            NpcBridgeNative.npc_performer_config_init(ref c);
            c.NpcId = NpcBridge.Utf8(options.NpcId);
            c.TextureFormat = (int)options.TextureFormat;
            c.BottomUp = options.BottomUp ? 1 : 0;
            c.Seed = options.Seed;
            c.TakeOver = options.TakeOver ? 1 : 0;
            c.InitialEmotion = NpcBridge.Utf8(options.InitialEmotion);
            c.InitialIntensity = options.InitialIntensity;
            try
            {
                ulong h;
                NpcBridge.Check(NpcBridgeNative.npc_performer_create(_handle, ref c, out h));
                return new NpcPerformer(h);
            }
            finally
            {
                NpcBridge.FreeUtf8(c.NpcId);
                NpcBridge.FreeUtf8(c.InitialEmotion);
            }
        }

        // The handle is kept after Dispose on purpose: later calls then get a clean NpcResult.Closed
        // from the native side (never-reused handles) instead of acting on handle 0.
        bool _disposed;

        public void Dispose()
        {
            if (!_disposed && _handle != 0) NpcBridgeNative.npc_client_destroy(_handle);
            _disposed = true;
            GC.SuppressFinalize(this);
        }

        ~NpcClient() { if (!_disposed && _handle != 0) NpcBridgeNative.npc_client_destroy(_handle); }
    }

    /// <summary>One NPC's live performance: audio and cues in, frames and events out.</summary>
    public sealed class NpcPerformer : IDisposable
    {
        ulong _handle;

        internal NpcPerformer(ulong handle) { _handle = handle; }

        public ulong Handle { get { return _handle; } }

        public unsafe NativePerformerStatus Status
        {
            get
            {
                var s = new NativePerformerStatus();
                s.StructSize = (uint)sizeof(NativePerformerStatus);
                NpcBridge.Check(NpcBridgeNative.npc_performer_get_status(_handle, ref s));
                return s;
            }
        }

        /// <summary>True once streaming; false after the timeout; throws if it failed (NotFound, ...).</summary>
        public bool WaitStreaming(uint timeoutMs)
        {
            NpcResult r = NpcBridgeNative.npc_performer_wait_streaming(_handle, timeoutMs);
            if (r == NpcResult.DeadlineExceeded) return false;
            NpcBridge.Check(r);
            return true;
        }

        public void Stop(bool immediate = false) { NpcBridge.Check(NpcBridgeNative.npc_performer_stop(_handle, immediate ? 1 : 0)); }

        public long TimelineUs
        {
            get { long now, clock; NpcBridgeNative.npc_performer_timeline_us(_handle, out now, out clock); return now; }
        }

        /// <summary>The pts to show now if audio playback is delayed by LatencyUs.</summary>
        public long PlaybackClockUs
        {
            get { long now, clock; NpcBridgeNative.npc_performer_timeline_us(_handle, out now, out clock); return clock; }
        }

        public unsafe NpcResult PushAudio(AudioChannel channel, float[] samples, int offset, int count,
                                          int sampleRate, long ptsUs = NpcBridgeNative.PtsAuto)
        {
            if (samples == null) return NpcBridgeNative.npc_performer_push_audio_float(_handle, channel, null, (UIntPtr)count, (uint)sampleRate, ptsUs);
            if (offset < 0 || count < 0 || offset + count > samples.Length) throw new ArgumentOutOfRangeException("count");
            fixed (float* p = samples)
                return NpcBridgeNative.npc_performer_push_audio_float(_handle, channel, p + offset, (UIntPtr)count, (uint)sampleRate, ptsUs);
        }

        public unsafe NpcResult PushAudio(AudioChannel channel, short[] samples, int offset, int count,
                                          int sampleRate, long ptsUs = NpcBridgeNative.PtsAuto)
        {
            if (samples == null) return NpcBridgeNative.npc_performer_push_audio_pcm16(_handle, channel, null, (UIntPtr)count, (uint)sampleRate, ptsUs);
            if (offset < 0 || count < 0 || offset + count > samples.Length) throw new ArgumentOutOfRangeException("count");
            fixed (short* p = samples)
                return NpcBridgeNative.npc_performer_push_audio_pcm16(_handle, channel, p + offset, (UIntPtr)count, (uint)sampleRate, ptsUs);
        }

        /// <summary>A vocabulary tag or preset at an intensity 0..1, blended over transitionS.</summary>
        public void SetEmotion(string name, float intensity, float transitionS = 0.3f, long ptsUs = NpcBridgeNative.PtsAuto)
        {
            IntPtr n = NpcBridge.Utf8(name);
            try { NpcBridge.Check(NpcBridgeNative.npc_performer_set_emotion(_handle, n, intensity, transitionS, ptsUs)); }
            finally { NpcBridge.FreeUtf8(n); }
        }

        public unsafe void SetEmotionWeights(float[] weights, float transitionS = 0.3f, long ptsUs = NpcBridgeNative.PtsAuto)
        {
            fixed (float* p = weights)
                NpcBridge.Check(NpcBridgeNative.npc_performer_set_emotion_weights(_handle, p, (UIntPtr)(weights == null ? 0 : weights.Length), transitionS, ptsUs));
        }

        public void MarkLine(string lineId, long startPtsUs, long endPtsUs, string text)
        {
            IntPtr id = NpcBridge.Utf8(lineId), t = NpcBridge.Utf8(text);
            try { NpcBridge.Check(NpcBridgeNative.npc_performer_mark_line(_handle, id, startPtsUs, endPtsUs, t)); }
            finally { NpcBridge.FreeUtf8(id); NpcBridge.FreeUtf8(t); }
        }

        /// <summary>
        /// Copies the frame due at clockUs into dst (e.g. a Texture2D's GetRawTextureData pointer).
        /// Ok, NoFrame (nothing due: keep showing the last one), BufferTooSmall, or an error.
        /// </summary>
        public unsafe NpcResult TryPopFrame(long clockUs, byte* dst, int capacity, out FrameInfo info, bool withEmotion = false)
        {
            var n = new NativeFrameInfo();
            n.StructSize = (uint)sizeof(NativeFrameInfo);
            NpcResult r = NpcBridgeNative.npc_performer_pop_frame(_handle, clockUs, ref n, dst, (UIntPtr)capacity);
            info = new FrameInfo();
            if (r != NpcResult.Ok && r != NpcResult.BufferTooSmall) return r;
            info.Sequence = n.Sequence;
            info.StreamIndex = n.StreamIndex;
            info.PtsUs = n.PtsUs;
            info.Format = (TextureFormat)n.Format;
            info.Width = (int)n.Width;
            info.Height = (int)n.Height;
            info.PayloadBytes = (int)n.PayloadBytes;
            info.Speaking = n.Speaking != 0;
            info.Listening = n.Listening != 0;
            info.LineId = n.LineId[0] == 0 ? "" : NpcBridge.FixedString(n.LineId, 128);
            if (withEmotion)
            {
                info.Emotion = new float[n.EmotionCount];
                for (int i = 0; i < n.EmotionCount; i++) info.Emotion[i] = n.Emotion[i];
            }
            return r;
        }

        public unsafe NpcResult TryPopFrame(long clockUs, byte[] dst, out FrameInfo info, bool withEmotion = false)
        {
            fixed (byte* p = dst)
                return TryPopFrame(clockUs, p, dst == null ? 0 : dst.Length, out info, withEmotion);
        }

        public unsafe bool TryPollEvent(out BridgeEvent ev)
        {
            var n = new NativeEvent();
            n.StructSize = (uint)sizeof(NativeEvent);
            ev = new BridgeEvent();
            if (NpcBridgeNative.npc_performer_poll_event(_handle, ref n) != NpcResult.Ok) return false;
            ev.Kind = (EventKind)n.Kind;
            ev.State = (PerformerState)n.State;
            ev.Error = (NpcResult)n.Error;
            ev.PtsUs = n.PtsUs;
            ev.DurationUs = n.DurationUs;
            ev.FrameCount = n.FrameCount;
            ev.LineId = NpcBridge.FixedString(n.LineId, 128);
            ev.Message = NpcBridge.FixedString(n.Message, 256);
            return true;
        }

        bool _disposed;

        public void Dispose()
        {
            if (!_disposed) NpcBridgeNative.npc_performer_destroy(_handle);
            _disposed = true;
            GC.SuppressFinalize(this);
        }

        ~NpcPerformer() { if (!_disposed) NpcBridgeNative.npc_performer_destroy(_handle); }
    }
}
