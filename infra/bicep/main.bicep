// Liutong provisioning: the Function app (Flex Consumption) and everything it needs.
//
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
//
// scripts/deploy.sh wraps that (and decides which secrets to generate), deploys the code and
// prints what Partner Center needs. docs/operators.md walks through it.

targetScope = 'resourceGroup'

@description('Short name of this environment; part of every resource name.')
@minLength(1)
@maxLength(12)
param environmentName string = 'liutong'

param location string = resourceGroup().location

@description('App ID URI of the operator\'s Liutong API app registration (the token audience).')
param apiAppIdUri string

@description('Client (application) ID of the Liutong API app registration.')
param apiClientId string

@description('Tenant whose operators may use the admin API (the publisher\'s; default: this deployment\'s tenant).')
param adminTenantId string = tenant().tenantId

@description('App ID URI of the admin API app registration (empty: the admin API answers 503).')
param adminAppIdUri string = ''

@description('Client (application) ID of the admin API app registration.')
param adminClientId string = ''

@description('Prefix of every table the service uses: a letter, then letters and digits (LIUTONG_TABLE_PREFIX).')
@minLength(1)
@maxLength(40)
param tablePrefix string = 'liutong'

@description('Key Vault secret holding the key-derivation master secret.')
param masterSecretName string = 'liutong-key-master'

@description('Key Vault secret holding the Marketplace notification secret (?sig=).')
param webhookSecretName string = 'liutong-webhook-secret'

@description('Generate the master secret. Only when it does not exist yet (deploy.sh checks): a new value is a master rotation.')
param createMasterSecret bool = false

@description('Generate the webhook secret. Only when it does not exist yet (deploy.sh checks): a new value breaks the URL in Partner Center.')
param createWebhookSecret bool = false

@secure()
param masterSecretSeed string = newGuid() // checkov:skip=CKV_AZURE_131:newGuid() is a fresh random value per deployment, not a hardcoded secret

@secure()
param masterSecretSeed2 string = newGuid() // checkov:skip=CKV_AZURE_131:newGuid() is a fresh random value per deployment, not a hardcoded secret

@secure()
param webhookSecretSeed string = newGuid() // checkov:skip=CKV_AZURE_131:newGuid() is a fresh random value per deployment, not a hardcoded secret

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_ZRS'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 300

@description('Spread the app over availability zones (only where Flex Consumption supports it).')
param zoneRedundant bool = false

@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Grant the identity queue access (only if queue triggers or outputs are added).')
param useQueues bool = false

@description('Resource ID of an Azure OpenAI account the identity may call (Cognitive Services OpenAI User); empty for none.')
param openAiAccountId string = ''

@description('Resource ID of an action group the metric alerts notify (metering errors, journal backlog, 5xx rate); empty: none.')
param alertActionGroupId string = ''

@description('Bytes waiting in an instance\'s usage journal before the backlog alert fires.')
@minValue(1)
param journalBacklogAlertBytes int = 1048576

@description('Percent of proxied calls answered 5xx over 15 minutes before the 5xx alert fires.')
@minValue(1)
@maxValue(100)
param serverErrorAlertPercent int = 5

@description('Overrides of the tunable LIUTONG_* settings below, e.g. { LIUTONG_KEY_ROTATION_DAYS: \'14\' }.')
param settingOverrides object = {}

param tags object = {}

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'liutong-environment': environmentName
})

var names = {
  identity: '${abbrs.managedIdentity}${environmentName}-${resourceToken}'
  logAnalytics: '${abbrs.logAnalytics}${environmentName}-${resourceToken}'
  appInsights: '${abbrs.appInsights}${environmentName}-${resourceToken}'
  storage: '${abbrs.storageAccount}${resourceToken}'
  keyVault: '${abbrs.keyVault}${resourceToken}'
  byokVault: '${abbrs.keyVault}byok-${resourceToken}'
  plan: '${abbrs.functionPlan}${environmentName}-${resourceToken}'
  functionApp: '${abbrs.functionApp}${environmentName}-${resourceToken}'
  deploymentContainer: 'app-package-${resourceToken}'
}

// The tables the service creates at start-up; Table Data Contributor lets it create later ones itself.
var serviceTables = [
  'keys'
  'keyindex'
  'deployments'
  'audit'
  'teams'
  'usageagg'
  'ratebudget'
]

module identity 'modules/identity.bicep' = {
  name: 'liutong-identity'
  params: {
    name: names.identity
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'liutong-monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: allTags
    retentionInDays: logRetentionDays
  }
}

// The workbook and alerts over the service's own metrics (LIUTONG_METRICS_EXPORTER=azure_monitor).
module observability 'modules/observability.bicep' = {
  name: 'liutong-observability'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: allTags
    actionGroupId: alertActionGroupId
    journalBacklogAlertBytes: journalBacklogAlertBytes
    serverErrorAlertPercent: serverErrorAlertPercent
  }
}

module storage 'modules/storage.bicep' = {
  name: 'liutong-storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    skuName: storageSku
    deploymentContainerName: names.deploymentContainer
    tableNames: [for table in serviceTables: '${tablePrefix}${table}']
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'liutong-keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: union(allTags, {
      'liutong-component': 'service-vault'
    })
    createMasterSecret: createMasterSecret
    createWebhookSecret: createWebhookSecret
    masterSecretName: masterSecretName
    webhookSecretName: webhookSecretName
    masterSecretSeed: masterSecretSeed
    masterSecretSeed2: masterSecretSeed2
    webhookSecretSeed: webhookSecretSeed
  }
}

module byokVault 'modules/byokVault.bicep' = {
  name: 'liutong-byok-vault'
  params: {
    name: names.byokVault
    location: location
    tags: union(allTags, {
      'liutong-component': 'byok-vault'
    })
    principalId: identity.outputs.principalId
  }
}

module roles 'modules/roleAssignments.bicep' = {
  name: 'liutong-roles'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    useQueues: useQueues
    openAiAccountId: openAiAccountId
  }
}

// LIUTONG_* settings that operators tune; every default suits Azure. Add a new setting here
// (tests/infra keeps this list in step with local.settings.sample.json).
var tunableSettings = {
  LIUTONG_ADMIN_ROLE: 'Liutong.Admin'
  LIUTONG_ADMIN_ROTATION_GRACE_HOURS: '24'
  LIUTONG_KEY_ROTATION_DAYS: '30'
  LIUTONG_BYOK_VAULT_CA_BUNDLE: ''
  LIUTONG_KEY_ROTATION_GRACE_HOURS: '24'
  LIUTONG_ENTRA_AUTHORITY: 'https://login.microsoftonline.com'
  LIUTONG_ENTRA_V1_ISSUER_HOST: 'https://sts.windows.net'
  LIUTONG_JWKS_MAX_AGE_HOURS: '24'
  LIUTONG_JWKS_MIN_REFRESH_SECONDS: '60'
  LIUTONG_TOKEN_LEEWAY_SECONDS: '300'
  LIUTONG_ARM_ENDPOINT: 'https://management.azure.com'
  LIUTONG_ARM_CREDENTIAL: 'managed_identity'
  LIUTONG_ARM_TENANT_ID: ''
  LIUTONG_ARM_CLIENT_ID: ''
  LIUTONG_ARM_CLIENT_SECRET_NAME: ''
  LIUTONG_UPSTREAMS_FILE: 'config/upstreams.json'
  LIUTONG_PLANS_FILE: 'config/plans.json'
  LIUTONG_PRINCIPAL_CACHE_TTL_SECONDS: '30'
  LIUTONG_PRINCIPAL_NEGATIVE_CACHE_TTL_SECONDS: '5'
  LIUTONG_PROXY_MAX_BODY_BYTES: '8388608'
  LIUTONG_PROXY_MAX_UPLOAD_BYTES: '26214400'
  LIUTONG_UPSTREAM_CONNECT_TIMEOUT_SECONDS: '10'
  LIUTONG_UPSTREAM_READ_TIMEOUT_SECONDS: '300'
  LIUTONG_STREAM_DRAIN_MAX_SECONDS: '60'
  LIUTONG_QUOTA_SYNC_INTERVAL_SECONDS: '5'
  LIUTONG_CREDIT_EXPIRY_DAYS: '365'
  LIUTONG_RATE_SHARED_BUDGET: 'true'
  LIUTONG_RATE_LEASE_FRACTION: '0.01'
  LIUTONG_RATE_OUTAGE_SHARE: '1'
  LIUTONG_USAGE_DURABILITY: 'async'
  LIUTONG_USAGE_JOURNAL_DIR: ''
  LIUTONG_USAGE_BATCH_MAX: '100'
  LIUTONG_USAGE_FLUSH_INTERVAL_MS: '50'
  LIUTONG_USAGE_RAW_RETENTION_DAYS: '90'
  LIUTONG_USAGE_AGGREGATE_RETENTION_DAYS: '400'
  LIUTONG_METERING_ENDPOINT: 'https://marketplaceapi.microsoft.com'
  LIUTONG_METERING_CREDENTIAL: 'managed_identity'
  LIUTONG_METRICS_EXPORTER: 'azure_monitor'
  LIUTONG_METRICS_PROMETHEUS_PORT: '0'
  LIUTONG_METRICS_EXPORT_INTERVAL_SECONDS: '60'
  LIUTONG_METRICS_PER_DEPLOYMENT: 'false'
  LIUTONG_MAX_BODY_BYTES: '65536'
  LIUTONG_HTTP_TIMEOUT_SECONDS: '10'
  LIUTONG_LOG_LEVEL: 'INFO'
}

// LIUTONG_* settings wired to the resources above; overrides cannot change them.
var wiredSettings = {
  // Tables by endpoint + managed identity; never a connection string in Azure.
  LIUTONG_STORAGE_CONNECTION_STRING: ''
  LIUTONG_STORAGE_TABLE_ENDPOINT: storage.outputs.tableEndpoint
  LIUTONG_TABLE_PREFIX: tablePrefix
  LIUTONG_MANAGED_IDENTITY_CLIENT_ID: identity.outputs.clientId
  // App Service resolves the reference with the user-assigned identity.
  LIUTONG_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookSecretUri})'
  // The service reads the master secret (and its older versions) from Key Vault itself.
  LIUTONG_KEY_VAULT_URL: keyVault.outputs.uri
  LIUTONG_MASTER_SECRET_NAME: masterSecretName
  LIUTONG_MASTER_SECRET: ''
  // Customers' own provider keys (BYOK) in their own vault, where the service may write.
  LIUTONG_BYOK_VAULT_URL: byokVault.outputs.uri
  LIUTONG_API_APP_ID_URI: apiAppIdUri
  LIUTONG_API_CLIENT_ID: apiClientId
  LIUTONG_ADMIN_TENANT_ID: adminTenantId
  LIUTONG_ADMIN_APP_ID_URI: adminAppIdUri
  LIUTONG_ADMIN_CLIENT_ID: adminClientId
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'liutong-functionapp'
  params: {
    planName: names.plan
    appName: names.functionApp
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    zoneRedundant: zoneRedundant
    serviceSettings: union(tunableSettings, settingOverrides, wiredSettings)
  }
  // The app's first start needs its roles (host storage, Key Vault reference, telemetry).
  dependsOn: [
    roles
  ]
}

output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOST string = functionApp.outputs.defaultHostName
// Register this in Partner Center with ?sig=<webhook secret> appended; ARM adds /resource.
output NOTIFICATION_ENDPOINT_URL string = 'https://${functionApp.outputs.defaultHostName}/api/marketplace'
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_TENANT_ID string = identity.outputs.tenantId
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URI string = keyVault.outputs.uri
output BYOK_VAULT_NAME string = byokVault.outputs.name
output WEBHOOK_SECRET_NAME string = webhookSecretName
output MASTER_SECRET_NAME string = masterSecretName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
output WORKBOOK_ID string = observability.outputs.workbookId
