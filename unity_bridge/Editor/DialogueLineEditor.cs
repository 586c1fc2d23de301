// Inspector for DialogueLine assets: the clip, the subtitle, and the emotion keys as a list a
// designer edits by time, with a tag picker from the sidecar's vocabulary and checks that catch
// what the bridge would refuse at runtime (keys past the end of the clip, unknown tags, bad
// intensity) while the designer is still looking at them.
using System.Linq;
using UnityEditor;
using UnityEngine;

namespace NpcRuntime.Bridge.Editor
{
    [CustomEditor(typeof(DialogueLine))]
    public sealed class DialogueLineEditor : UnityEditor.Editor
    {
        // The default vocabulary (npc_runtime/emotions.yaml) and built-in presets; NPC-specific
        // presets are typed by hand ("Other...").
        static readonly string[] KnownTags =
            { "neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "smug", "worried", "delighted" };

        public override void OnInspectorGUI()
        {
            var line = (DialogueLine)target;
            serializedObject.Update();
            EditorGUILayout.PropertyField(serializedObject.FindProperty("clip"));
            EditorGUILayout.PropertyField(serializedObject.FindProperty("subtitle"));
            float length = line.clip != null ? line.clip.length : 0f;
            if (line.clip != null)
                EditorGUILayout.LabelField("Length", length.ToString("0.00") + " s, " + line.clip.frequency + " Hz, " + line.clip.channels + " ch");

            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Emotion over time", EditorStyles.boldLabel);
            SerializedProperty keys = serializedObject.FindProperty("emotions");
            for (int i = 0; i < keys.arraySize; i++)
            {
                SerializedProperty k = keys.GetArrayElementAtIndex(i);
                SerializedProperty time = k.FindPropertyRelative("time");
                SerializedProperty tag = k.FindPropertyRelative("tag");
                SerializedProperty intensity = k.FindPropertyRelative("intensity");
                SerializedProperty blend = k.FindPropertyRelative("blendSeconds");
                EditorGUILayout.BeginHorizontal();
                time.floatValue = EditorGUILayout.Slider(time.floatValue, 0f, Mathf.Max(length, 0.01f), GUILayout.MinWidth(120));
                int known = System.Array.IndexOf(KnownTags, tag.stringValue);
                string[] options = KnownTags.Concat(new[] { "Other..." }).ToArray();
                int pick = EditorGUILayout.Popup(known < 0 ? KnownTags.Length : known, options, GUILayout.Width(90));
                if (pick < KnownTags.Length) tag.stringValue = KnownTags[pick];
                else tag.stringValue = EditorGUILayout.TextField(tag.stringValue, GUILayout.Width(90));
                intensity.floatValue = EditorGUILayout.Slider(intensity.floatValue, 0f, 1f, GUILayout.MinWidth(100));
                blend.floatValue = Mathf.Clamp(EditorGUILayout.FloatField(blend.floatValue, GUILayout.Width(40)), 0f, 10f);
                if (GUILayout.Button("-", GUILayout.Width(20))) { keys.DeleteArrayElementAtIndex(i); break; }
                EditorGUILayout.EndHorizontal();
                if (line.clip != null && time.floatValue > length)
                    EditorGUILayout.HelpBox("This key is after the end of the clip.", MessageType.Warning);
                if (string.IsNullOrEmpty(tag.stringValue))
                    EditorGUILayout.HelpBox("Empty tag: the sidecar would refuse this cue.", MessageType.Error);
            }
            EditorGUILayout.BeginHorizontal();
            if (GUILayout.Button("Add key"))
            {
                keys.InsertArrayElementAtIndex(keys.arraySize);
                SerializedProperty k = keys.GetArrayElementAtIndex(keys.arraySize - 1);
                k.FindPropertyRelative("tag").stringValue = "neutral";
                k.FindPropertyRelative("intensity").floatValue = 1f;
                k.FindPropertyRelative("blendSeconds").floatValue = 0.3f;
            }
            if (GUILayout.Button("Sort by time"))
            {
                Undo.RecordObject(line, "Sort emotion keys");
                serializedObject.ApplyModifiedProperties();
                line.emotions = line.SortedEmotions();
                EditorUtility.SetDirty(line);
                serializedObject.Update();
            }
            EditorGUILayout.EndHorizontal();
            EditorGUILayout.LabelField("Time (s) | tag | intensity | blend (s)", EditorStyles.miniLabel);
            serializedObject.ApplyModifiedProperties();
        }
    }

    /// <summary>The native plugin outlives a domain reload: free its objects before one.</summary>
    [InitializeOnLoad]
    static class NpcBridgeEditorHooks
    {
        static NpcBridgeEditorHooks()
        {
            AssemblyReloadEvents.beforeAssemblyReload += NpcBridgeConnections.ShutdownAll;
            EditorApplication.playModeStateChanged += s =>
            {
                if (s == PlayModeStateChange.ExitingPlayMode) NpcBridgeConnections.ShutdownAll();
            };
        }
    }
}
