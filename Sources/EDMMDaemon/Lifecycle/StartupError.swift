/// Why the daemon cannot start.
public enum StartupError: Error, Equatable, CustomStringConvertible {
    case noSGX2(String)
    case simulator(String)
    case configuration(String)
    case socket(String)

    public var description: String {
        switch self {
        case .noSGX2(let reason): "device = \"kernel\" but SGX2 is not usable: \(reason)"
        case .simulator(let message): message
        case .configuration(let message): message
        case .socket(let message): message
        }
    }
}
