// The Function app on the Flex Consumption plan (FC1, Linux, Python), running as the user-assigned
// identity. Host storage, deployment storage and telemetry all use that identity: no keys, no
// connection strings (the Application Insights "connection string" carries no credential here,
// because local auth is disabled on the component).

param planName string
param appName string
param location string
param tags object = {}

param identityId string
param identityClientId string

param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string

@description('Python version of the Flex runtime (az functionapp list-flexconsumption-runtimes lists what a region offers).')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on scale-out.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Spread instances over availability zones (only in regions where Flex Consumption supports it).')
param zoneRedundant bool = false

@description('Concurrent HTTP requests one instance takes before the platform adds another (the handlers are async).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 300

@description('The service\'s own LIUTONG_* settings (main.bicep builds them).')
param serviceSettings object

var hostSettings = {
  // Identity-based host storage (no AzureWebJobsStorage connection string).
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // The identity azure-identity's DefaultAzureCredential picks in the worker.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Required by the HTTP-streaming extension (all HTTP functions use it).
  PYTHON_ENABLE_INIT_INDEXING: '1'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  // checkov:skip=CKV_AZURE_225:zone redundancy is the zoneRedundant parameter: Flex Consumption offers it only in some regions
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222:public by design: ARM posts Marketplace notifications and customers' managed applications call the key exchange from their own tenants
  // checkov:skip=CKV_AZURE_17:no client certificates: ARM's notifications carry none; callers are authenticated in code (the sig secret, Entra tokens)
  // checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption, which scales per request (maximumInstanceCount)
  // checkov:skip=CKV_AZURE_213:no App Service health check on Flex Consumption (the platform manages instances); GET /api/health serves external probes
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Key Vault references resolve with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This is the 'appsettings' config: the checks below read properties of the 'web'/'authsettings' configs.
  // checkov:skip=CKV_AZURE_13:authsettings check; Flex Consumption has no App Service Authentication and every endpoint authenticates in code
  // checkov:skip=CKV_AZURE_63:web-config check (httpLoggingEnabled); App Service file logs do not apply to Flex Consumption, telemetry goes to Application Insights
  // checkov:skip=CKV_AZURE_65:web-config check (detailedErrorLoggingEnabled); see CKV_AZURE_63
  // checkov:skip=CKV_AZURE_66:web-config check (requestTracingEnabled); see CKV_AZURE_63
  // checkov:skip=CKV_AZURE_80:web-config check (netFrameworkVersion); this is a Python app
  // checkov:skip=CKV_AZURE_88:azureStorageAccounts config check; the app mounts no Azure Files share
  // checkov:skip=CKV_AZURE_222:web-config check (publicNetworkAccess); public by design, see the site
  parent: app
  name: 'appsettings'
  properties: union(hostSettings, serviceSettings)
}

// Deployments use Entra ID (az, with the operator's token), never publishing passwords.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
