import EDMMClient
import EDMMProtocol
import EDMMSimHost
import SGXSimulator

/// An empty, initialized enclave in the daemon's machine, registered on another host's connection, used
/// for nothing else: the many registered enclaves of the RSS and scale check.
struct IdleEnclave {
    let enclave: SimulatedEnclave
    let handle: EnclaveHandle
    let connection: EDMMConnection

    init(on host: SimulatedEnclaveHost, blueprint: EnclaveBlueprint) async throws {
        connection = host.connection
        guard let machineFD = connection.machineDescriptor else { throw EnclaveHostError.daemonNotSimulated }
        // ELRANGE without its contents mapped: 10,000 enclaves of 1 TiB exceed the 128 TiB of
        // a process's address space, and nothing runs inside these.
        let machine = try SimulatedMachine.open(fd: machineFD)
        enclave = try SimulatedEnclave.create(machine: machine, base: blueprint.size, size: blueprint.size, mapContents: false)
        let initialized = enclave.initialize()
        guard initialized == 0 else { throw EnclaveHostError.build(step: "INIT", errno: initialized) }
        handle = try await connection.register(
            descriptor: enclave.fd, base: enclave.base, size: enclave.size, label: blueprint.label, preheatPages: 0,
            managed: WireRange(blueprint.managedPages)
        ).enclave
    }

    func unregister() async { _ = try? await connection.unregister(handle) }
}
