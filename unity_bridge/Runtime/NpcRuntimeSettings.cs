// Project-wide connection settings (an asset: Create > NPC Runtime > Settings). NpcFace
// components that point at the same settings share one native client (one gRPC channel).
using UnityEngine;

namespace NpcRuntime.Bridge
{
    [CreateAssetMenu(menuName = "NPC Runtime/Settings", fileName = "NpcRuntimeSettings")]
    public sealed class NpcRuntimeSettings : ScriptableObject
    {
        [Tooltip("gRPC target of the sidecar. The default is the local sidecar started with " +
                 "`npc-runtime serve` (it listens on loopback only).")]
        public string serverAddress = "127.0.0.1:50051";

        [Tooltip("Use TLS. Only for a remote sidecar; a local one speaks plaintext on loopback.")]
        public bool useTls = false;

        [Tooltip("PEM root certificates for TLS; empty uses the system roots.")]
        [TextArea] public string tlsRootCertsPem = "";

        [Tooltip("BC1 (DXT1) is uploaded as-is at 4 bits per pixel; RGBA8 costs 8x the bandwidth " +
                 "and exists for debugging and platforms without BC1.")]
        public TextureFormat textureFormat = TextureFormat.BC1;

        [Tooltip("First reconnect delay (ms) after the sidecar goes away; doubles up to the cap.")]
        public uint reconnectMinMs = 100;

        [Tooltip("Reconnect delay cap (ms). Frames resume within about this plus the stream " +
                 "latency once the sidecar is back.")]
        public uint reconnectMaxMs = 500;

        [Tooltip("Frames held per NPC before the oldest is dropped (a hitch longer than this " +
                 "many frames skips ahead instead of growing memory).")]
        public uint frameQueueCapacity = 32;

        [Tooltip("Audio accepted ahead of now per channel (ms). A dialogue line longer than this " +
                 "must be pushed in parts.")]
        public uint maxAudioAheadMs = 30000;

        [Tooltip("Shown in the sidecar's logs for streams from this game.")]
        public string clientName = "unity";

        internal ClientOptions ToOptions()
        {
            return new ClientOptions
            {
                Target = serverAddress, UseTls = useTls,
                TlsRootCertsPem = string.IsNullOrEmpty(tlsRootCertsPem) ? null : tlsRootCertsPem,
                ClientName = clientName, ReconnectMinMs = reconnectMinMs, ReconnectMaxMs = reconnectMaxMs,
                FrameQueueCapacity = frameQueueCapacity, MaxAudioAheadMs = maxAudioAheadMs,
            };
        }
    }
}
