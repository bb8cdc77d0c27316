import Foundation

// Writes the committed seed corpus of ProtocolFuzz: `swift run ProtocolSeeds Corpus/protocol`.
// It replaces the folder's *.bin files, so the corpus always equals what this program writes.
let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: ProtocolSeeds <corpus-directory>\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: arguments[1], isDirectory: true)
let files = FileManager.default
do {
    try files.createDirectory(at: directory, withIntermediateDirectories: true)
    for old in try files.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) where old.pathExtension == "bin" {
        try files.removeItem(at: old)
    }
    let seeds = requestSeeds + responseSeeds + pushSeeds
    for seed in seeds {
        try Data(seed.bytes).write(to: directory.appendingPathComponent("\(seed.name).bin"))
    }
    print("wrote \(seeds.count) seeds to \(directory.path)")
} catch {
    FileHandle.standardError.write(Data("ProtocolSeeds: \(error)\n".utf8))
    exit(1)
}
