import ArgumentParser
import EDMMBuildInfo

@main
struct EdmmSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edmm-sim",
        abstract: "The simulated SGX2 EPC: conformance suite, trace replay and simulated enclave hosts.",
        version: BuildInfo.versionLine(of: "edmm-sim"),
        // Every subcommand is listed here; each lives in its own file.
        subcommands: [
            ConformanceCommand.self,
            ReplayCommand.self,
            HelperCommand.self,
            OpsBenchCommand.self,
            RunCommand.self,
            HostCommand.self,
            HoldCommand.self,
            SoakCommand.self,
            SoakHostCommand.self,
            HandOverCommand.self,
            BenchCommand.self,
            BenchHostCommand.self,
            EchoCommand.self,
        ])
}
