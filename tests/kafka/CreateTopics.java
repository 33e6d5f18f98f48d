// Creates topics on the test broker with the Kafka AdminClient (kafka-clients is
// among the broker jars, so there is nothing to build). Run as a single-file
// source program, usually through tests/kafka/create-topics.sh:
//
//   java -cp 'WORKDIR/libs/*' tests/kafka/CreateTopics.java BOOTSTRAP TOPIC[:PARTITIONS] ...
//
// PARTITIONS defaults to 1; the replication factor is always 1. A topic that
// already exists is fine (TopicExistsException is ignored) as long as it has
// the requested partition count; otherwise it is an error. Returns once every
// topic is visible in the metadata with a leader for every partition.
//
// stdout: one line per topic, in argument order: "TOPIC PARTITIONS created" or
// "TOPIC PARTITIONS exists". Errors on stderr. Exit 0 ok, 1 failure, 2 usage.

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class CreateTopics {
    static final long WAIT_MS = 30_000;

    static void usage(String why) {
        System.err.println("CreateTopics: " + why);
        System.err.println("usage: CreateTopics BOOTSTRAP TOPIC[:PARTITIONS] ...");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) usage("need a bootstrap address and at least one topic");
        Map<String, Integer> want = new LinkedHashMap<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            int colon = a.lastIndexOf(':');          // topic names cannot contain ':'
            String name = colon < 0 ? a : a.substring(0, colon);
            int parts = 1;
            if (colon >= 0) {
                try {
                    parts = Integer.parseInt(a.substring(colon + 1));
                } catch (NumberFormatException e) {
                    parts = -1;
                }
            }
            if (name.isEmpty() || parts < 1) usage("bad topic spec '" + a + "'");
            Integer prev = want.put(name, parts);
            if (prev != null && prev != parts) usage("topic '" + name + "' given twice with different partition counts");
        }

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "relay-create-topics");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        int rc = 0;
        try (Admin admin = Admin.create(p)) {
            List<NewTopic> news = new ArrayList<>();
            want.forEach((n, c) -> news.add(new NewTopic(n, c, (short) 1)));
            var futures = admin.createTopics(news).values();
            Map<String, String> status = new LinkedHashMap<>();
            for (String n : want.keySet()) {
                try {
                    futures.get(n).get();
                    status.put(n, "created");
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof TopicExistsException) {
                        status.put(n, "exists");
                    } else {
                        System.err.println("CreateTopics: creating '" + n + "' failed: " + e.getCause());
                        rc = 1;
                    }
                }
            }
            if (rc != 0) System.exit(rc);

            // Wait until every topic is in the metadata with all partitions led.
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (true) {
                String notReady = null;
                try {
                    Map<String, TopicDescription> d =
                        admin.describeTopics(want.keySet()).allTopicNames().get(10, TimeUnit.SECONDS);
                    for (var e : want.entrySet()) {
                        TopicDescription td = d.get(e.getKey());
                        if (td == null) { notReady = e.getKey() + ": not in metadata"; break; }
                        if (td.partitions().size() != e.getValue()) {
                            if (status.get(e.getKey()).equals("exists")) {
                                System.err.println("CreateTopics: topic '" + e.getKey() + "' already exists with "
                                    + td.partitions().size() + " partitions, not " + e.getValue());
                                System.exit(1);
                            }
                            notReady = e.getKey() + ": " + td.partitions().size() + " partitions visible";
                            break;
                        }
                        for (TopicPartitionInfo pi : td.partitions()) {
                            if (pi.leader() == null || pi.leader().isEmpty()) {
                                notReady = e.getKey() + "[" + pi.partition() + "]: no leader";
                                break;
                            }
                        }
                        if (notReady != null) break;
                    }
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw e;
                    notReady = "unknown topic: " + e.getCause().getMessage();
                }
                if (notReady == null) break;
                if (System.currentTimeMillis() > deadline) {
                    System.err.println("CreateTopics: topics not ready after " + WAIT_MS + " ms (" + notReady + ")");
                    System.exit(1);
                }
                Thread.sleep(100);
            }
            for (var e : want.entrySet()) {
                System.out.println(e.getKey() + " " + e.getValue() + " " + status.get(e.getKey()));
            }
        }
    }
}
