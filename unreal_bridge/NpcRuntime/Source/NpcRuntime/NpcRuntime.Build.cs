// Runtime module: the Blueprint-facing component and settings over the native bridge core.
// All networking, buffering and reconnect logic is in the core (bridge_core/, C++17, linked as a
// shared library staged under Source/ThirdParty/NpcBridge), so this module stays a thin layer.
using System.IO;
using UnrealBuildTool;

public class NpcRuntime : ModuleRules
{
	public NpcRuntime(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		PublicDependencyModuleNames.AddRange(new[] { "Core", "CoreUObject", "Engine", "DeveloperSettings" });
		PrivateDependencyModuleNames.AddRange(new[] { "RenderCore", "RHI", "AudioCaptureCore", "AudioPlatformConfiguration" });

		string Root = Path.Combine(ModuleDirectory, "..", "ThirdParty", "NpcBridge");
		PublicIncludePaths.Add(Path.Combine(Root, "include"));
		// The core's C++ API uses exceptions-free std:: types only; RTTI is not needed.
		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			string Lib = Path.Combine(Root, "lib", "Win64");
			PublicAdditionalLibraries.Add(Path.Combine(Lib, "npc_bridge.lib"));
			PublicDelayLoadDLLs.Add("npc_bridge.dll");
			RuntimeDependencies.Add("$(BinaryOutputDir)/npc_bridge.dll", Path.Combine(Lib, "npc_bridge.dll"));
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux)
		{
			string Lib = Path.Combine(Root, "lib", "Linux", "libnpc_bridge.so");
			PublicAdditionalLibraries.Add(Lib);
			RuntimeDependencies.Add("$(BinaryOutputDir)/libnpc_bridge.so", Lib);
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			string Lib = Path.Combine(Root, "lib", "Mac", "libnpc_bridge.dylib");
			PublicAdditionalLibraries.Add(Lib);
			RuntimeDependencies.Add("$(BinaryOutputDir)/libnpc_bridge.dylib", Lib);
		}
	}
}
