import Foundation
import PackagePlugin

/// Generates, with `scripts/build-info.sh`, `EDMMVersion.release` from the repository's
/// `VERSION`, and `BuildInfo`'s commit and date from the stamp `make` writes in
/// `.build/build-info`. A command runs again only when its input file changes, so an incremental
/// build stays incremental and the same commit gives the same binary.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let root = context.package.directoryURL
        let script = root.appending(path: "scripts/build-info.sh")
        let input: URL
        let mode: String
        if target.name == "EDMMVersion" {
            input = root.appending(path: "VERSION")
            mode = "version"
        } else {
            input = root.appending(path: ".build/build-info")
            mode = "stamp-swift"
            // An input must exist: before make writes a stamp, an empty one says "unknown".
            // (SwiftPM keeps this plugin's answer between builds, so it cannot be optional.)
            if !FileManager.default.fileExists(atPath: input.path) {
                try FileManager.default.createDirectory(at: input.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data("commit=\ndate=\n".utf8).write(to: input)
            }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(target.name)+Generated.swift")
        return [
            .buildCommand(
                displayName: "Generating \(target.name) from \(input.lastPathComponent)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, mode, input.path, output.path],
                inputFiles: [script, input],
                outputFiles: [output])
        ]
    }
}
