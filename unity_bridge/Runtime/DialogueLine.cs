// A designer-facing dialogue line: the clip the NPC says, its subtitle, and emotion tags over
// time (Create > NPC Runtime > Dialogue Line; edited with DialogueLineEditor).
using System;
using System.Collections.Generic;
using UnityEngine;

namespace NpcRuntime.Bridge
{
    [Serializable]
    public struct EmotionKey
    {
        [Tooltip("Seconds from the start of the line.")]
        public float time;

        [Tooltip("A vocabulary tag (neutral, happy, sad, angry, surprised, fearful, disgusted) or " +
                 "a preset name (server-wide like 'smug', or the NPC's own).")]
        public string tag;

        [Range(0f, 1f)] public float intensity;

        [Tooltip("Seconds to blend from the previous emotion.")]
        [Min(0f)] public float blendSeconds;
    }

    [CreateAssetMenu(menuName = "NPC Runtime/Dialogue Line", fileName = "DialogueLine")]
    public sealed class DialogueLine : ScriptableObject
    {
        public AudioClip clip;

        [Tooltip("Shown as a subtitle; echoed by the sidecar in LINE_STARTED.")]
        [TextArea] public string subtitle = "";

        [Tooltip("Emotion changes during the line, by time from its start.")]
        public List<EmotionKey> emotions = new List<EmotionKey>();

        /// <summary>Id used for line markers (stable per asset).</summary>
        public string LineId { get { return name.Length > 120 ? name.Substring(0, 120) : name; } }

        /// <summary>Keys ordered by time (the bridge refuses cues whose pts go backwards).</summary>
        public List<EmotionKey> SortedEmotions()
        {
            var keys = new List<EmotionKey>(emotions);
            keys.Sort((a, b) => a.time.CompareTo(b.time));
            return keys;
        }
    }
}
