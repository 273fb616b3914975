package sesa.opensearch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * Starts ONE OpenSearch node in this JVM, for integration tests.
 *
 * <pre>
 * java -cp target/classes:target/lib/* sesa.opensearch.Launcher \
 *      --home DIR --http-port 9200 [--transport-port 9300] [key=value ...]
 * </pre>
 *
 * The node binds to 127.0.0.1 only, uses discovery.type=single-node, has no
 * security plugin (plain HTTP, no auth) and keeps its data, logs and config
 * under DIR. The modules that the distribution would load from modules/ are
 * loaded from the classpath instead (netty4, reindex, painless, ...).
 *
 * Extra node settings: trailing key=value arguments, and the environment
 * variable SEARCH_EXTRA_SETTINGS ("k1=v1 k2=v2", whitespace separated); later
 * ones win over the defaults below, e.g.
 * SEARCH_EXTRA_SETTINGS="thread_pool.write.queue_size=2 thread_pool.write.size=1".
 *
 * Bootstrap checks are not run: they belong to the distribution's Bootstrap
 * class, which is not used here (and they are not enforced on loopback anyway).
 */
public final class Launcher {

    /** Module plugin classes; those missing from the classpath are skipped. */
    private static final String[] MODULES = {
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.join.ParentJoinPlugin",
        "org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin",
        "org.opensearch.script.mustache.MustachePlugin",
        "org.opensearch.percolator.PercolatorPlugin",
        "org.opensearch.index.rankeval.RankEvalPlugin",
    };

    /** Node with classpath plugins (the public Node constructor takes none). */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    private Launcher() {}

    private static void usage(String msg) {
        System.err.println("Launcher: " + msg);
        System.err.println("usage: Launcher --home DIR --http-port N [--transport-port N] [key=value ...]");
        System.exit(2);
    }

    private static void putKeyValue(Map<String, String> into, String kv, String origin) {
        int eq = kv.indexOf('=');
        if (eq <= 0) {
            usage("not a key=value setting (" + origin + "): " + kv);
        }
        into.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
    }

    public static void main(String[] args) throws Exception {
        String home = null;
        String httpPort = null;
        String transportPort = null;
        Map<String, String> extra = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--home":
                    home = ++i < args.length ? args[i] : null;
                    break;
                case "--http-port":
                    httpPort = ++i < args.length ? args[i] : null;
                    break;
                case "--transport-port":
                    transportPort = ++i < args.length ? args[i] : null;
                    break;
                default:
                    putKeyValue(extra, a, "argument");
            }
        }
        String envExtra = System.getenv("SEARCH_EXTRA_SETTINGS");
        if (envExtra != null) {
            for (String kv : envExtra.trim().split("\\s+")) {
                if (!kv.isEmpty()) {
                    putKeyValue(extra, kv, "SEARCH_EXTRA_SETTINGS");
                }
            }
        }
        if (home == null || httpPort == null) {
            usage("--home and --http-port are required");
        }

        Path homePath = Paths.get(home).toAbsolutePath();
        Path dataPath = homePath.resolve("data");
        Path logsPath = homePath.resolve("logs");
        Path configPath = homePath.resolve("config");
        for (Path p : List.of(homePath, dataPath, logsPath, configPath)) {
            Files.createDirectories(p);
        }

        Settings.Builder b = Settings.builder()
            .put("cluster.name", "sesa-fp-it")
            .put("node.name", "sesa-fp-node-1")
            .put("path.home", homePath.toString())
            .put("path.data", dataPath.toString())
            .put("path.logs", logsPath.toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort != null ? transportPort : "9300-9400")
            .put("discovery.type", "single-node")
            // tests run on small / nearly full disks: never go read-only on watermarks
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // avoid mmap (vm.max_map_count is 65530 on these machines)
            .put("node.store.allow_mmap", false);
        for (Map.Entry<String, String> e : extra.entrySet()) {
            b.put(e.getKey(), e.getValue());
        }
        Settings settings = b.build();

        // Node logs go to the console (the caller redirects them to a file);
        // level via SEARCH_LOG_LEVEL (default info).
        Path log4j = configPath.resolve("log4j2.properties");
        if (!Files.exists(log4j)) {
            String level = System.getenv().getOrDefault("SEARCH_LOG_LEVEL", "info");
            Files.writeString(log4j, String.join("\n",
                "status = error",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.target = SYSTEM_OUT",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
                "rootLogger.level = " + level,
                "rootLogger.appenderRef.console.ref = console",
                ""));
        }
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName("sesa-fp-node-1");
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), configPath, () -> "sesa-fp-node-1");
        LogConfigurator.configure(env);

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : MODULES) {
            try {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException e) {
                // not on the classpath / other name in this version
            }
        }
        System.err.println("Launcher: modules " + plugins);
        if (!extra.isEmpty()) {
            System.err.println("Launcher: extra settings " + extra);
        }

        final Node node;
        try {
            node = new EmbeddedNode(env, plugins);
        } catch (Throwable t) {
            System.err.println("Launcher: node failed to initialise: " + t);
            t.printStackTrace();
            Runtime.getRuntime().halt(1);
            return;
        }
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                System.err.println("Launcher: error while closing: " + e);
            } finally {
                closed.countDown();
            }
        }, "launcher-shutdown"));
        try {
            node.start();
        } catch (Throwable t) {
            System.err.println("Launcher: node failed to start: " + t);
            t.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        // One node: new indices default to 0 replicas so that they turn green.
        // (cluster.default_number_of_replicas is read from the cluster
        // metadata, not from node settings, so it is set through the API.)
        if (!extra.containsKey("cluster.default_number_of_replicas")) {
            node.client().admin().cluster().prepareUpdateSettings()
                .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", 0))
                .get();
        }
        System.err.println("Launcher: node started, http on 127.0.0.1:" + httpPort);
        closed.await();
    }
}
