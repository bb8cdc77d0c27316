import ArgumentParser
import EDMMBuildInfo
import EDMMSystem
import Glibc

@main
struct EdmmCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edmmctl",
        abstract: "Inspect and drive edmmd, the SGX2 enclave memory daemon.",
        discussion: """
            edmmctl talks to edmmd over its control socket with the same protocol enclave hosts \
            use. Owners see their own enclaves; root and the daemon's admin group see all of them. \
            Every command prints a table for humans, or one JSON object with --json for scripts.

            OPTIONS THAT APPLY TO EVERY COMMAND
              --socket PATH   the control socket (default: $EDMMD_SOCKET, else
                              /run/edmmd/control.sock); before or after the command name
              --json          print JSON instead of text

            EXAMPLES
              edmmctl status                     is edmmd up, on which device, how full is the EPC
              edmmctl enclaves --sort committed  who holds the EPC
              edmmctl show web-1                 one enclave: pages by state, every counter
              edmmctl top                        live view; c p r i n l sort, q quits
              edmmctl reclaim web-1              give web-1's lazy pool back now (admin)
              edmmctl config check /etc/edmmd/edmmd.toml
              edmmctl metrics | grep edmmd_enclave_committed_bytes

            EXIT STATUS
              0   success
              1   edmmd refused the request, the enclave named does not exist, or
                  config check found problems (the message says which)
              64  bad command line (an unknown command, option or value, or no
                  command at all)
              69  edmmd is not reachable: no socket at the path, nobody accepting on it,
                  or the connection was closed (start edmmd, or fix --socket)
              76  edmmd answered with something edmmctl cannot understand (version mismatch
                  or a protocol violation)
              77  permission denied: the socket does not let this user connect, or an
                  admin command (reclaim, reload) by someone neither root nor in the
                  admin group
            """,
        version: BuildInfo.versionLine(of: "edmmctl"),
        // Each command lives in its own file; add new ones here.
        subcommands: [
            StatusCommand.self, EnclavesCommand.self, ShowCommand.self, TopCommand.self, ReclaimCommand.self, ReloadCommand.self,
            ConfigCommand.self, MetricsCommand.self, ScopesCommand.self, NRIHookCommand.self,
        ])

    @OptionGroup var global: GlobalOptions

    /// No command: the manual, and the status of a bad command line.
    func run() throws {
        guard !global.json else { throw CommandLineError.noCommand }
        printError(Self.helpMessage())
        throw ExitCode(64)
    }
}
