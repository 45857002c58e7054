import ArgumentParser
import ChunkRelayBench

/// `chunkrelay`: the gateway, the local Lambda runtime and a client, in one executable.
@main
struct ChunkRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chunkrelay",
        abstract: "A local emulator of a serverless image generator: gateway, Lambda-like runtime and client.",
        subcommands: [ServeCommand.self, GenerateCommand.self, TestCommand.self, InvokeCommand.self, ReplayCommand.self, BenchCommand.self]
    )
}
