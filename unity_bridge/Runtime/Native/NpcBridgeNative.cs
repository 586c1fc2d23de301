// P/Invoke declarations for the native bridge core's C ABI (bridge_core/include/npc_bridge.h).
//
// Every struct here is blittable and mirrors the C layout field by field (sequential layout,
// C alignment), so calls marshal nothing: strings going in are allocated by the wrapper
// (NpcBridgeClient.cs) and fixed-size char arrays coming out are decoded there. Keep this file
// free of UnityEngine so it compiles and runs under plain Mono (the bridge tests do exactly that).
using System;
using System.Runtime.InteropServices;

namespace NpcRuntime.Bridge
{
    /// <summary>npc_result: 0 is success; 1..16 are gRPC status codes; 100+ the bridge's own.</summary>
    public enum NpcResult
    {
        Ok = 0,
        Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5,
        AlreadyExists = 6, PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9,
        Aborted = 10, OutOfRange = 11, Unimplemented = 12, Internal = 13, Unavailable = 14,
        DataLoss = 15, Unauthenticated = 16,
        NullArgument = 100, BadHandle = 101, Closed = 102, BufferTooSmall = 103, BufferFull = 104,
        NotStreaming = 105, NoFrame = 106, NoEvent = 107,
    }

    public enum TextureFormat { Default = 0, BC1 = 1, RGBA8 = 2 }
    public enum AudioChannel { Speak = 1, Listen = 2 }
    public enum ConnectionState { Idle = 0, Connecting = 1, Ready = 2, TransientFailure = 3, Shutdown = 4 }
    public enum PerformerState { Connecting = 0, Streaming = 1, Reconnecting = 2, Stopped = 3, Failed = 4 }

    public enum EventKind
    {
        StateChanged = 1, Started = 2, LineStarted = 3, LineFinished = 4, EmotionApplied = 5,
        AudioLate = 6, FramesDropped = 7, ServerShutdown = 8, Stopped = 9,
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeClientConfig
    {
        public uint StructSize;
        public IntPtr Target;            // const char*
        public int UseTls;
        public IntPtr TlsRootCertsPem;   // const char*
        public IntPtr ClientName;        // const char*
        public uint ReconnectMinMs;
        public uint ReconnectMaxMs;
        public uint FrameQueueCapacity;
        public uint MaxAudioAheadMs;
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeServerInfo
    {
        public uint StructSize;
        public uint ProtocolVersion;
        public uint Fps;
        public uint Width;
        public uint Height;
        public uint ChunkFrames;
        public long LatencyUs;
        public uint ModelSampleRate;
        public uint EmotionCount;
        public fixed byte ServerVersion[32];
        public fixed byte ModelName[64];
        public fixed byte ModelConfig[32];
        public fixed byte EmotionTags[512];
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeImage
    {
        public IntPtr Data;
        public UIntPtr Size;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeRegisterParams
    {
        public uint StructSize;
        public IntPtr NpcId;
        public IntPtr DisplayName;
        public IntPtr Images;            // const npc_image*
        public UIntPtr ImageCount;
        public IntPtr DefaultEmotion;
        public float DefaultIntensity;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativePerformerConfig
    {
        public uint StructSize;
        public IntPtr NpcId;
        public int TextureFormat;
        public int BottomUp;
        public ulong Seed;
        public int TakeOver;
        public IntPtr InitialEmotion;
        public float InitialIntensity;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct NativePerformerStatus
    {
        public uint StructSize;
        public int State;
        public int Error;
        public int TextureFormat;
        public uint Width, Height, Fps, PayloadBytes;
        public long LatencyUs;
        public long TimelineUs;
        public ulong FramesReceived;
        public ulong FramesDropped;
        public ulong Reconnects;
        public ulong QueuedFrames;
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeFrameInfo
    {
        public const int MaxEmotions = 16;
        public uint StructSize;
        public ulong Sequence;
        public ulong StreamIndex;
        public long PtsUs;
        public int Format;
        public uint Width, Height;
        public uint PayloadBytes;
        public int Speaking, Listening;
        public uint EmotionCount;
        public fixed float Emotion[MaxEmotions];
        public fixed byte LineId[128];
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct NativeEvent
    {
        public uint StructSize;
        public int Kind;
        public int State;
        public int Error;
        public long PtsUs;
        public long DurationUs;
        public uint FrameCount;
        public fixed byte LineId[128];
        public fixed byte Message[256];
    }

    /// <summary>Raw entry points. Use NpcClient / NpcPerformer unless you need the ABI itself.</summary>
    public static unsafe class NpcBridgeNative
    {
        // Resolves to libnpc_bridge.so / npc_bridge.dll / libnpc_bridge.dylib.
        public const string Lib = "npc_bridge";

        public const long PtsAuto = long.MinValue;
        public const long PtsNone = long.MinValue;
        public const long ClockAuto = long.MinValue;
        public const long ClockLatest = long.MaxValue;
        public const long ClockOldest = long.MinValue + 1;
        public const uint AbiVersion = 1;

        [DllImport(Lib)] public static extern uint npc_bridge_abi_version();
        [DllImport(Lib)] public static extern IntPtr npc_bridge_version();
        [DllImport(Lib)] public static extern IntPtr npc_last_error();
        [DllImport(Lib)] public static extern IntPtr npc_result_name(int result);
        [DllImport(Lib)] public static extern NpcResult npc_bridge_shutdown_all();

        [DllImport(Lib)] public static extern void npc_client_config_init(ref NativeClientConfig config);
        [DllImport(Lib)] public static extern NpcResult npc_client_create(ref NativeClientConfig config, out ulong client);
        [DllImport(Lib)] public static extern NpcResult npc_client_destroy(ulong client);
        [DllImport(Lib)] public static extern NpcResult npc_client_get_state(ulong client, out ConnectionState state);
        [DllImport(Lib)] public static extern NpcResult npc_client_wait_ready(ulong client, uint timeoutMs);
        [DllImport(Lib)] public static extern NpcResult npc_client_get_server_info(ulong client, uint timeoutMs, ref NativeServerInfo info);
        [DllImport(Lib)] public static extern NpcResult npc_client_register_npc(ulong client, ref NativeRegisterParams p, uint timeoutMs, byte* idOut, UIntPtr idCapacity);
        [DllImport(Lib)] public static extern NpcResult npc_client_delete_npc(ulong client, IntPtr npcId, uint timeoutMs);

        [DllImport(Lib)] public static extern void npc_performer_config_init(ref NativePerformerConfig config);
        [DllImport(Lib)] public static extern NpcResult npc_performer_create(ulong client, ref NativePerformerConfig config, out ulong performer);
        [DllImport(Lib)] public static extern NpcResult npc_performer_destroy(ulong performer);
        [DllImport(Lib)] public static extern NpcResult npc_performer_stop(ulong performer, int immediate);
        [DllImport(Lib)] public static extern NpcResult npc_performer_wait_streaming(ulong performer, uint timeoutMs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_get_status(ulong performer, ref NativePerformerStatus status);
        [DllImport(Lib)] public static extern NpcResult npc_performer_push_audio_pcm16(ulong performer, AudioChannel channel, short* samples, UIntPtr count, uint sampleRate, long ptsUs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_push_audio_float(ulong performer, AudioChannel channel, float* samples, UIntPtr count, uint sampleRate, long ptsUs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_set_emotion(ulong performer, IntPtr name, float intensity, float transitionS, long ptsUs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_set_emotion_weights(ulong performer, float* weights, UIntPtr count, float transitionS, long ptsUs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_mark_line(ulong performer, IntPtr lineId, long startPtsUs, long endPtsUs, IntPtr text);
        [DllImport(Lib)] public static extern NpcResult npc_performer_timeline_us(ulong performer, out long nowUs, out long playbackClockUs);
        [DllImport(Lib)] public static extern NpcResult npc_performer_pop_frame(ulong performer, long clockUs, ref NativeFrameInfo info, byte* dst, UIntPtr dstCapacity);
        [DllImport(Lib)] public static extern NpcResult npc_performer_poll_event(ulong performer, ref NativeEvent ev);
    }
}
