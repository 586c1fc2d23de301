// Shares one NpcClient (one gRPC channel) among every NpcFace using the same settings asset, and
// tears all native objects down when the application quits.
using System.Collections.Generic;
using UnityEngine;

namespace NpcRuntime.Bridge
{
    public static class NpcBridgeConnections
    {
        sealed class Entry { public NpcClient client; public int users; }

        static readonly Dictionary<NpcRuntimeSettings, Entry> Clients = new Dictionary<NpcRuntimeSettings, Entry>();

        public static NpcClient Acquire(NpcRuntimeSettings settings)
        {
            Entry e;
            if (!Clients.TryGetValue(settings, out e))
            {
                e = new Entry { client = new NpcClient(settings.ToOptions()) };  // never blocks
                Clients[settings] = e;
            }
            e.users++;
            return e.client;
        }

        public static void Release(NpcRuntimeSettings settings)
        {
            Entry e;
            if (settings == null || !Clients.TryGetValue(settings, out e)) return;
            if (--e.users > 0) return;
            e.client.Dispose();
            Clients.Remove(settings);
        }

        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.SubsystemRegistration)]
        static void Init()
        {
            // Enter Play Mode without a domain reload keeps statics: start clean every time.
            Clients.Clear();
            Application.quitting -= ShutdownAll;
            Application.quitting += ShutdownAll;
        }

        /// <summary>Destroys every native client and performer (quit, editor domain reload).</summary>
        public static void ShutdownAll()
        {
            Clients.Clear();
            NpcBridge.ShutdownAll();
        }
    }
}
