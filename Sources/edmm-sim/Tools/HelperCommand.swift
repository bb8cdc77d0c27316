import ArgumentParser
import Glibc
import SGXSimulator

/// `edmm-sim sim-helper --machine-fd M --enclave-fd E`: a second process on an existing
/// simulated enclave, for the cross-process tests. It opens the machine and the enclave from
/// inherited descriptors, then runs replay lines (plus `read`/`write`) from standard input
/// against that enclave, named "A", answering one JSON line each.
struct HelperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim-helper", abstract: "Drive an inherited simulated enclave from JSON lines (tests).",
        shouldDisplay: false)

    @Option(help: "Descriptor of the simulated machine.")
    var machineFd: Int32

    @Option(help: "Descriptor of the simulated enclave.")
    var enclaveFd: Int32

    func run() throws {
        let machine = try SimulatedMachine.open(fd: machineFd)
        let enclave = try SimulatedEnclave.open(fd: enclaveFd, machine: machine)
        // An enclave host maps its enclave: holes RW, existing pages within their cap.
        if enclave.mmap(address: enclave.base, length: enclave.size, protection: .rw) != 0 {
            for page in stride(from: UInt64(0), to: enclave.size, by: 4096) {
                let info = enclave.pageInfo(offset: page)
                let prot = info.kernelType == nil ? .rw : info.vmMaxProtection.intersection(.rw)
                _ = enclave.mmap(address: enclave.base + page, length: 4096, protection: prot)
            }
        }
        let replay = try Replay(machine: machine, extended: true)
        replay.adopt(enclave, as: "A")
        print("{\"ready\":true}")
        fflush(nil)
        var input = LineSource.standardInput
        while let line = input.next() {
            print(replay.perform(line))
            fflush(nil)
        }
        enclave.close()
    }
}
