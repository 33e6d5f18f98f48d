package relay.registry;

import java.util.Collections;

import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * Stands in for the Quarkus extension apicurio-common-app-components-config-index,
 * whose build-time ("-deployment") half is not on Maven Central. That half
 * collects the app's {@code @Dynamic} config properties (the ones an admin may
 * change at run time through /apis/registry/v2/admin/config/properties) into
 * a bean of this type. Here the list is empty: every setting is static (system
 * properties / application.properties), which is all the tests need. The
 * Confluent-compatible API does not use dynamic properties.
 */
public class NoDynamicConfig {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(Collections.emptyList());
    }
}
