import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Synchronization

/// A simulated enclave host that reconnects by itself and keeps every kind of request in flight
/// (allocations, frees, trims, restrictions and relaxations, new TCS pages), so that a daemon
/// killed at any moment catches some of them in the middle of their flow. Requests the crash
/// left unanswered come back as `interrupted` and their blocks are dropped (the enclave settled
/// their pages itself); any other failure is recorded.
final class ChurningHost: Sendable {
    let host: SimulatedEnclaveHost
    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    private struct State {
        var stop = false
        var failures: [String] = []
    }

    private struct Block {
        var range: PageRange
        var permissions: PagePermissions = .rw
        var isTCS = false
    }

    init(socketPath: String, label: String) async throws {
        host = try await SimulatedEnclaveHost.launch(
            socketPath: socketPath, blueprint: EnclaveBlueprint(label: label, size: 1 << 24, fireAndForget: false),
            clientName: "e2e \(label)",
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(60)))
        task.withLock { $0 = Task { await self.work() } }
    }

    private func work() async {
        var blocks: [Block] = []
        var round = 0
        while !state.withLock({ $0.stop }) {
            round += 1
            var operations: [HostOperation] = [.allocate(pages: UInt64(1 + round % 8))]
            var taken: [Block?] = [nil]
            while blocks.count > 6 {
                var block = blocks.removeFirst()
                switch round % 5 {
                case 0 where block.permissions == .rw && !block.isTCS:
                    operations.append(.restrict(block.range, to: .read))
                    block.permissions = .read
                case 1 where block.permissions == .read:
                    operations.append(.relax(block.range, to: .rw))
                    block.permissions = .rw
                case 2 where block.range.count == 1 && !block.isTCS && block.permissions == .rw:
                    operations.append(.makeTCS(page: block.range.first))
                    block.isTCS = true
                case 3 where !block.isTCS && block.permissions == .rw:
                    operations.append(.free(block.range))
                default:
                    operations.append(.trim(block.range))
                }
                taken.append(block)
            }
            let results = await host.perform(operations)
            for ((operation, block), result) in zip(zip(operations, taken), results) {
                switch result {
                case .success(let outcome):
                    if let granted = outcome.granted {
                        blocks.append(Block(range: granted))
                    } else if let block, case .restrict = operation {
                        blocks.append(block)
                    } else if let block, case .relax = operation {
                        blocks.append(block)
                    } else if let block, case .makeTCS = operation {
                        blocks.append(block)
                    }
                case .failure(.interrupted):
                    break
                case .failure(let error):
                    state.withLock { $0.failures.append("\(operation): \(error)") }
                }
            }
        }
    }

    /// Stops after the current batch; every failure other than an interrupted request.
    func stop() async -> [String] {
        state.withLock { $0.stop = true }
        await task.withLock { $0 }?.value
        return state.withLock { $0.failures }
    }
}
