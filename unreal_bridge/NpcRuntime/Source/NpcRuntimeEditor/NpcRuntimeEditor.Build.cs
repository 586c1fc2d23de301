// Editor-only module (UncookedOnly): a Tools menu entry that checks the sidecar connection.
using UnrealBuildTool;

public class NpcRuntimeEditor : ModuleRules
{
	public NpcRuntimeEditor(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		PrivateDependencyModuleNames.AddRange(new[] { "Core", "CoreUObject", "Engine", "Slate", "SlateCore", "ToolMenus", "NpcRuntime" });
	}
}
