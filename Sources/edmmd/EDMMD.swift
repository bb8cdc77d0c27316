import ArgumentParser
import EDMMBuildInfo
import EDMMConfig
import EDMMDaemon

@main
struct EDMMD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edmmd",
        abstract: "Manage SGX2 enclave memory (EPC) for every enclave on this host.",
        discussion: """
            Enclave hosts connect to the control socket (AF_UNIX, SOCK_SEQPACKET), register their \
            /dev/sgx_enclave descriptors, and ask edmmd to allocate, free, trim, restrict, relax or \
            convert pages. edmmd runs the kernel's EDMM ioctls for them on one serial queue per \
            enclave, batches trims and removals across clients, keeps a lazy-free pool, enforces \
            quotas and reclaims idle pools under EPC pressure.

            Without usable SGX2 (or with --simulate) edmmd runs on a simulated EPC in shared \
            memory, and hands it to every client in the HELLO reply. The start-up log and every \
            STATUS say which device is used and why.

            Flags override the configuration file. SIGHUP (systemctl reload) re-reads the file and \
            applies what can change at run time; SIGTERM or SIGINT stop accepting, finish queued \
            work, notify clients and exit 0.

            EXIT STATUS
              0  stopped by SIGTERM or SIGINT after draining;
                 --check-config found no problem
              1  the configuration is invalid (each problem with file:line)
              3  edmmd could not start (socket in use, no SGX2 with
                 device = "kernel", ...)
              64 bad command line (EX_USAGE of sysexits.h, as for edmmctl
                 and edmm-sim)

            FILES
              /etc/edmmd/edmmd.toml     configuration (see config/edmmd.toml)
              /run/edmmd/control.sock   default control socket
            """,
        version: BuildInfo.versionLine(of: "edmmd"))

    @Option(
        name: .long,
        help: ArgumentHelp("Configuration file. Without this flag, a missing /etc/edmmd/edmmd.toml means the defaults.", valueName: "file"))
    var config: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Validate a configuration file, print every problem with file:line, and exit 0 or 1.", valueName: "file"))
    var checkConfig: String?

    @Option(name: .long, help: ArgumentHelp("The control socket (overrides [daemon] socket).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Use the simulated EPC even where /dev/sgx_enclave supports SGX2.")
    var simulate = false

    @Flag(name: .long, help: "Run every request as its own ioctls at once: the baseline for the batching claims.")
    var noBatch = false

    @Option(name: .long, help: ArgumentHelp("Size of the simulated EPC, e.g. 64MiB (overrides [simulator] epc_size).", valueName: "size"))
    var epcSize: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Prometheus endpoint HOST:PORT, \"\" to disable (overrides [metrics] listen).", valueName: "host:port"))
    var metrics: String?

    @Option(
        name: .long,
        help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (overrides [daemon] log_level).", valueName: "level"))
    var logLevel: String?

    mutating func run() async throws {
        if let checkConfig { return try DaemonLaunch.checkConfig(checkConfig) }
        let (socket, simulate, noBatch, epcSize, metrics, logLevel) = (socket, simulate, noBatch, epcSize, metrics, logLevel)
        try await DaemonLaunch(configPath: config) { () throws(ConfigErrors) in
            try ConfigOverrides.validated(
                socket: socket, simulate: simulate, noBatch: noBatch, epcSize: epcSize, metrics: metrics, logLevel: logLevel)
        }.run()
    }
}
