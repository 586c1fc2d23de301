// The Unity-side flow, outside Unity: the plain C# client (unity_bridge/Runtime/Native) driving the
// native core through the C ABI, compiled by mcs and run by mono against a real sidecar.
// Started by tests/bridge/test_native_bridge.py:
//
//   mono BridgeFlowTest.exe --target H:P --speak a.wav --listen b.wav --image face.png --dump DIR
//
// Does what the NpcFace MonoBehaviour does: float samples (as AudioClip.GetData gives them) for the
// dialogue line, 20 ms microphone blocks for the player, emotion cues, bottom-up BC1 frames copied
// into one reused texture buffer. Prints "RESULT {json}" or "FAIL reason" (exit 1).
using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using NpcRuntime.Bridge;

static class BridgeFlowTest
{
    static Dictionary<string, string> Args = new Dictionary<string, string>();

    static void Check(bool ok, string what)
    {
        if (ok) return;
        Console.WriteLine("FAIL " + what);
        Console.Out.Flush();
        Environment.Exit(1);
    }

    // PCM16 mono WAV -> float samples in [-1, 1).
    static float[] ReadWav(string path, out int rate)
    {
        byte[] b = File.ReadAllBytes(path);
        Check(b.Length > 44 && b[0] == 'R' && b[8] == 'W', path + " is not a WAV file");
        int p = 12, channels = 0, bits = 0;
        rate = 0;
        float[] samples = null;
        while (p + 8 <= b.Length)
        {
            string id = System.Text.Encoding.ASCII.GetString(b, p, 4);
            int len = BitConverter.ToInt32(b, p + 4);
            if (id == "fmt ")
            {
                channels = BitConverter.ToInt16(b, p + 10);
                rate = BitConverter.ToInt32(b, p + 12);
                bits = BitConverter.ToInt16(b, p + 22);
            }
            else if (id == "data")
            {
                len = Math.Min(len, b.Length - p - 8);
                samples = new float[len / 2];
                for (int i = 0; i < samples.Length; i++) samples[i] = BitConverter.ToInt16(b, p + 8 + 2 * i) / 32768f;
            }
            p += 8 + len + (len & 1);
        }
        Check(channels == 1 && bits == 16 && samples != null, path + ": need PCM16 mono");
        return samples;
    }

    static void VoicedSpan(float[] s, int rate, out long a, out long b)
    {
        float thr = (float)Math.Pow(10, -45.0 / 20.0);
        int i = 0, j = s.Length;
        while (i < j && Math.Abs(s[i]) < thr) i++;
        while (j > i && Math.Abs(s[j - 1]) < thr) j--;
        a = (long)i * 1000000 / rate;
        b = (long)j * 1000000 / rate;
    }

    static int Main(string[] argv)
    {
        for (int k = 0; k + 1 < argv.Length; k += 2) Args[argv[k].TrimStart('-')] = argv[k + 1];
        Check(NpcBridge.Version().Length > 0, "version");

        using (var client = new NpcClient(new ClientOptions { Target = Args["target"], ClientName = "mono-test" }))
        {
            Check(client.WaitReady(30000), "no connection to " + Args["target"]);
            ServerInfo info = client.GetServerInfo(10000);
            int happy = Array.IndexOf(info.EmotionTags, "happy"), sad = Array.IndexOf(info.EmotionTags, "sad");
            Check(happy > 0 && sad > 0, "vocabulary " + string.Join(",", info.EmotionTags));
            string npcId = "bridge_csharp_npc";
            try { client.RegisterNpc(npcId, "C# test", new[] { File.ReadAllBytes(Args["image"]) }, "neutral", 1f); }
            catch (NpcBridgeException e) { Check(e.Result == NpcResult.AlreadyExists, e.Message); }

            // Unknown NPC: a clean NotFound, not a hang or a crash.
            using (var ghost = client.CreatePerformer(new PerformerOptions { NpcId = "csharp_nobody" }))
            {
                try { ghost.WaitStreaming(20000); Check(false, "unknown NPC streamed"); }
                catch (NpcBridgeException e) { Check(e.Result == NpcResult.NotFound, e.Message); }
            }

            var perf = client.CreatePerformer(new PerformerOptions { NpcId = npcId, BottomUp = true, Seed = 3 });
            Check(perf.WaitStreaming(60000), "not streaming within 60 s");
            NativePerformerStatus st = perf.Status;
            int payload = (int)((st.Width / 4) * (st.Height / 4) * 8);
            Check(st.PayloadBytes == payload && st.TextureFormat == (int)TextureFormat.BC1, "negotiated payload " + st.PayloadBytes);

            int speakRate, listenRate;
            float[] speak = ReadWav(Args["speak"], out speakRate);
            float[] listen = ReadWav(Args["listen"], out listenRate);
            long tSpeak = perf.TimelineUs + 300000;
            long tListen = tSpeak + (long)speak.Length * 1000000 / speakRate + 600000;
            long tEnd = tListen + (long)listen.Length * 1000000 / listenRate;
            perf.SetEmotion("happy", 0.9f, 0f, tSpeak);
            perf.MarkLine("csharp_line", tSpeak, tSpeak + (long)speak.Length * 1000000 / speakRate, "Welcome!");
            Check(perf.PushAudio(AudioChannel.Speak, speak, 0, speak.Length, speakRate, tSpeak) == NpcResult.Ok, "push SPEAK: " + NpcBridge.LastError());
            perf.SetEmotion("sad", 0.9f, 0f, tListen);

            byte[] texture = new byte[payload];     // one buffer reused, like a Texture2D's memory
            var frames = new List<FrameInfo>();
            var keep = new List<byte[]>();
            int block = listenRate / 50, mic = 0;
            DateTime deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                long now = perf.TimelineUs;
                while (now >= tListen && mic < listen.Length && tListen + (long)mic * 1000000 / listenRate <= now)
                {
                    int n = Math.Min(block, listen.Length - mic);
                    NpcResult r = perf.PushAudio(AudioChannel.Listen, listen, mic, n, listenRate, mic == 0 ? tListen : NpcBridgeNative.PtsAuto);
                    Check(r == NpcResult.Ok, "push LISTEN " + r + " " + NpcBridge.LastError());
                    mic += n;
                }
                FrameInfo fi;
                NpcResult pr = perf.TryPopFrame(NpcBridgeNative.ClockOldest, texture, out fi, true);
                if (pr == NpcResult.Ok)
                {
                    frames.Add(fi);
                    if (frames.Count == 1 || frames.Count % 40 == 0) keep.Add((byte[])texture.Clone());
                }
                else Check(pr == NpcResult.NoFrame, "pop " + pr);
                if (frames.Count >= 100 && frames[frames.Count - 1].PtsUs > tEnd + 400000) break;
                Thread.Sleep(5);
            }
            Check(frames.Count >= 100, "only " + frames.Count + " frames");

            long period = 1000000 / st.Fps;
            long sa, sb, la, lb;
            VoicedSpan(speak, speakRate, out sa, out sb);
            VoicedSpan(listen, listenRate, out la, out lb);
            sa += tSpeak; sb += tSpeak; la += tListen; lb += tListen;
            int speakIn = 0, speakOn = 0, listenIn = 0, listenOn = 0, happyOk = 0, happyN = 0, sadOk = 0, sadN = 0, lineFrames = 0;
            for (int i = 0; i < frames.Count; i++)
            {
                FrameInfo f = frames[i];
                Check(f.PayloadBytes == payload && f.Width == st.Width && f.Format == TextureFormat.BC1, "frame " + i);
                if (i > 0)
                {
                    FrameInfo p = frames[i - 1];
                    Check(f.PtsUs > p.PtsUs, "pts not monotonic at " + i);
                    Check(f.Sequence == p.Sequence + 1, "bridge lost a frame at " + i);
                    Check(Math.Abs(f.PtsUs - p.PtsUs - (long)(f.StreamIndex - p.StreamIndex) * period) <= 1, "pts off the frame grid at " + i);
                }
                if (f.Speaking) Check(f.PtsUs >= sa - 2 * period && f.PtsUs <= sb + 2 * period, "speaking outside SPEAK audio at " + f.PtsUs);
                if (f.Listening) Check(f.PtsUs >= la - 2 * period && f.PtsUs <= lb + 2 * period, "listening outside LISTEN audio at " + f.PtsUs);
                if (f.PtsUs >= sa && f.PtsUs < sb) { speakIn++; if (f.Speaking) speakOn++; }
                if (f.PtsUs >= la && f.PtsUs < lb) { listenIn++; if (f.Listening) listenOn++; }
                if (f.PtsUs >= tSpeak + period && f.PtsUs < tListen) { happyN++; if (f.Emotion[happy] > 0.5f) happyOk++; }
                if (f.PtsUs >= tListen + period) { sadN++; if (f.Emotion[sad] > 0.5f) sadOk++; }
                if (f.LineId == "csharp_line") lineFrames++;
            }
            Check(speakIn > 10 && speakOn * 2 > speakIn, "speaking " + speakOn + "/" + speakIn);
            Check(listenIn > 10 && listenOn * 2 > listenIn, "listening " + listenOn + "/" + listenIn);
            Check(happyN > 5 && happyOk == happyN, "happy " + happyOk + "/" + happyN);
            Check(sadN > 5 && sadOk == sadN, "sad " + sadOk + "/" + sadN);
            Check(lineFrames > 10, "line frames " + lineFrames);

            int applied = 0, lineEvents = 0;
            BridgeEvent ev;
            while (perf.TryPollEvent(out ev))
            {
                if (ev.Kind == EventKind.EmotionApplied) applied++;
                if ((ev.Kind == EventKind.LineStarted || ev.Kind == EventKind.LineFinished) && ev.LineId == "csharp_line") lineEvents++;
            }
            Check(applied >= 2 && lineEvents == 2, "events applied=" + applied + " line=" + lineEvents);

            // Bad use from C#: codes, not crashes.
            try { perf.SetEmotion("no_such_feeling", 1f); Check(false, "unknown emotion accepted"); }
            catch (NpcBridgeException e) { Check(e.Result == NpcResult.InvalidArgument, e.Message); }
            Check(perf.PushAudio(AudioChannel.Speak, (float[])null, 0, 10, 16000) == NpcResult.NullArgument, "null samples");
            FrameInfo small;
            Check(perf.TryPopFrame(NpcBridgeNative.ClockLatest, new byte[8], out small) != NpcResult.Ok, "8-byte texture accepted");

            for (int k = 0; k < keep.Count && k < 3; k++)
                File.WriteAllBytes(Path.Combine(Args["dump"], "frame_" + k + ".bc1"), keep[k]);

            perf.Stop();
            DateTime stopBy = DateTime.UtcNow.AddSeconds(20);
            while (perf.Status.State != (int)PerformerState.Stopped && DateTime.UtcNow < stopBy) Thread.Sleep(20);
            Check(perf.Status.State == (int)PerformerState.Stopped, "not stopped: " + perf.Status.State);
            perf.Dispose();
            try { perf.SetEmotion("happy", 1f); Check(false, "call after Dispose succeeded"); }
            catch (NpcBridgeException e) { Check(e.Result == NpcResult.Closed, e.Message); }

            Console.WriteLine("RESULT {\"frames\": " + frames.Count + ", \"width\": " + st.Width + ", \"height\": " + st.Height +
                              ", \"speaking_frames\": " + speakOn + ", \"listening_frames\": " + listenOn + "}");
        }
        return 0;
    }
}
