import EDMMConfig

/// Feeds arbitrary text to the daemon's configuration parser, as `edmmd --check-config` and a
/// SIGHUP reload would. It must never crash (TOMLKit's toml++ aborts on some malformed headers;
/// the parser's preflight must catch them), and whatever it accepts must satisfy the
/// cross-field rules the daemon relies on.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
    do {
        let config = try DaemonConfig.parse(toml: text, fileName: "fuzz.toml")
        if config.pressure.lowWatermarkPercent >= config.pressure.highWatermarkPercent {
            fatalError("accepted low watermark \(config.pressure.lowWatermarkPercent) >= high \(config.pressure.highWatermarkPercent)")
        }
        if config.growth.minChunkPages > config.growth.maxChunkPages {
            fatalError("accepted min chunk \(config.growth.minChunkPages) > max \(config.growth.maxChunkPages)")
        }
        if config.simulator.epcBytes % 4096 != 0 || config.simulator.epcBytes < 64 * 4096 {
            fatalError("accepted EPC size \(config.simulator.epcBytes)")
        }
    } catch {
        for problem in error.errors where problem.message.isEmpty {
            fatalError("an error without a message: \(problem)")
        }
    }
    return 0
}
